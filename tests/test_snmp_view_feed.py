"""The SNMP view follows the alarm manager's commit feed: in-process, real stores.

The view a running SnmpService shows after commits applied from the feed must be the
view built from the store, region by region; applying them must read nothing; elements
and distributions written by their own modules show without an alarm commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import PurgeOp
from agent.config import settings_from_dict
from agent.export.snmp.mibdata import MibData, SystemInfo
from agent.export.snmp.oids import SYS_DESCR, SYS_SERVICES, SYS_UPTIME
from agent.export.snmp.service import SnmpService
from agent.export.snmp.values import SHARING_STATE_NUMBER, SYNC_STATE_NUMBER, counter, gauge
from agent.store.access import StoreAccess
from agent.store.database import Store
from agent.store.distributions import Outcome
from agent.store.elements import Element
from agent.store.encryption import KeyRing, StoreKey
from agent.store.shared_data import Change
from tests.conftest import free_udp_port
from tests.waiting import until

STARTED = datetime(2026, 11, 1, tzinfo=UTC)


class Clock:
    """The manager's clock: moves a millisecond per call, and by days when told."""

    def __init__(self) -> None:
        self.now = STARTED

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class Agent:
    store: Store
    manager: AlarmManager
    service: SnmpService
    clock: Clock

    @property
    def engine(self) -> Engine:
        return self.store.engine


@asynccontextmanager
async def running(
    tmp_path: Path,
    log_size: int = 1000,
    setup: Callable[[Engine], None] | None = None,
    url: str | None = None,
) -> AsyncIterator[Agent]:
    settings = settings_from_dict(
        {
            "agent": {"data_dir": str(tmp_path / "var")},
            "snmp": {
                "listen": [f"127.0.0.1:{free_udp_port()}"],
                "heartbeat_interval": "0s",
                "communities": [{"name": "public"}],
                "notification_log_size": log_size,
            },
        }
    )
    (tmp_path / "var").mkdir(exist_ok=True)
    store = Store(url or f"sqlite:///{tmp_path / 'var' / 'provsync.db'}")
    store.open()
    if setup is not None:
        setup(store.engine)
    clock = Clock()
    manager = AlarmManager(store.engine, Catalog(), clock=clock)
    manager.start()
    service = SnmpService(settings, manager, store.engine, "host1", STARTED)
    try:
        await service.start()
        yield Agent(store, manager, service, clock)
    finally:
        await service.stop()
        manager.stop()
        store.close()


def walk(data: MibData) -> list[tuple[tuple[int, ...], bytes]]:
    """Every varbind of the view the store decides: PROVSYNC-MIB and the system group
    but sysUpTime (a clock); the standard regions (counters, engine, sysORTable) are the
    service's, which a MibData built from the store alone does not have."""
    root = data.oids.root

    def decided(oid: tuple[int, ...]) -> bool:
        return oid[: len(root)] == root or (
            SYS_DESCR[:-2] < oid < (*SYS_SERVICES[:-1], 1) and oid != SYS_UPTIME
        )

    return [(oid, vb) for oid, vb in data.view.iter_from((1, 3)) if decided(oid)]


def from_store(agent: Agent) -> MibData:
    live = agent.service.data
    fresh = MibData(
        agent.engine,
        live.catalog,
        live.oids,
        SystemInfo(name="host1"),
        log_size=live.log_size,
        started_at=STARTED,
    )
    fresh.install(fresh.read_full())
    return fresh


def assert_same_view(agent: Agent) -> None:
    live = agent.service.current_view()
    assert live is agent.service.data.view
    assert agent.service.data.seq == agent.manager.last_seq
    fresh = from_store(agent)
    for region in ("alarms", "log", "elements", "types"):
        got, want = getattr(agent.service.data, region), getattr(fresh, region)
        assert list(got.ids) == list(want.ids), region
        assert list(got.iter_from(got.entry)) == list(want.iter_from(want.entry)), region
    counts = agent.service.data.counts
    assert min(counts.values(), default=0) >= 0
    assert +counts == +fresh.counts  # the nonzero ones
    assert walk(agent.service.data) == walk(fresh)


def test_the_view_from_the_feed_is_the_view_from_the_store(tmp_path: Path, store_url: str) -> None:
    async def scenario() -> None:
        async with running(tmp_path, log_size=25, url=store_url) as agent:
            manager = agent.manager
            raised = await asyncio.gather(
                *[
                    manager.raise_alarm(t, f"cm{i}", qualifier=q, text=f"text {i}")
                    for i, (t, q) in enumerate(
                        [
                            ("sync-failed", ""),
                            ("element-unreachable", "primary"),
                            ("auth-failed-missing", ""),
                            ("sync-required", ""),
                            ("sync-failed", "b"),
                            ("element-unreachable", ""),
                        ]
                        * 3
                    )
                ]
            )  # one group commit of many raises
            ids = [change.alarm["id"] for change in raised]
            assert_same_view(agent)
            for _ in range(2):  # repeats: counts change, nothing is logged
                repeated = await manager.raise_alarm("sync-failed", "cm0", text="text 0")
                assert repeated.seq is None
            assert_same_view(agent)
            await manager.raise_alarm("sync-failed", "cm0", severity="critical", text="worse")
            await manager.raise_alarm(
                "element-unreachable", "cm1", qualifier="primary", text="other text"
            )
            assert_same_view(agent)
            await manager.acknowledge(ids[2], by="ops")
            await manager.acknowledge(ids[4], by="ops")
            await manager.acknowledge(ids[4], acknowledge=False, by="ops")
            assert_same_view(agent)
            await asyncio.gather(*[manager.clear(i, note="fixed") for i in ids[3:9]])
            assert_same_view(agent)
            await manager.emit_event("heartbeat", "host1", text="beat")
            assert_same_view(agent)
            agent.clock.now += timedelta(days=3)
            await manager.raise_alarm("sync-failed", "cm-late")
            purged = await manager.purge(
                PurgeOp(cleared_alarm_days=1, event_days=365, log_max=1_000_000, log_days=365)
            )
            assert purged["alarms"] == 6
            assert_same_view(agent)
            again = await manager.raise_alarm("sync-required", "cm3")  # cleared, so a new id
            assert again.alarm["id"] not in ids
            assert_same_view(agent)
            assert len(agent.service.data.log) == 25  # trimmed to notification_log_size

    asyncio.run(scenario())


def test_commits_apply_without_reading_the_store(tmp_path: Path) -> None:
    def sharing_element(engine: Engine) -> None:
        element = add_element(engine, "cs1")
        StoreAccess(engine).elements.set_state(element.id, sharing=True, sync_state="idle")

    async def scenario() -> None:
        async with running(tmp_path, setup=sharing_element) as agent:
            element = StoreAccess(agent.engine).elements.get("cs1")
            assert sharing_state(agent, element.id) == SHARING_STATE_NUMBER["sharing"]
            reads: list[str] = []

            def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                if threading.current_thread().name != "alarm-writer":
                    reads.append(statement)

            event.listen(agent.engine, "before_cursor_execute", count)
            try:
                manager = agent.manager
                for i in range(40):  # one commit each
                    await manager.raise_alarm("sync-failed", f"cm{i}")
                    agent.service.current_view()
                await manager.raise_alarm("sync-failed", "cm0")  # a repeat
                blocking = await manager.raise_alarm("sync-required", "cs1")
                assert sharing_state(agent, element.id) == SHARING_STATE_NUMBER["syncRequired"]
                for i in range(0, 40, 3):
                    await manager.clear(type_id="sync-failed", resource=f"cm{i}")
                await manager.clear(blocking.alarm["id"])
                assert sharing_state(agent, element.id) == SHARING_STATE_NUMBER["sharing"]
                await manager.emit_event("heartbeat", "host1")
                view = agent.service.current_view()
            finally:
                event.remove(agent.engine, "before_cursor_execute", count)
            assert reads == []
            assert agent.service.data.seq == agent.manager.last_seq
            assert len(agent.service.data.alarms) == 40 - 14
            count_cell = view.get((*agent.service.oids["provsyncActiveAlarms"], 0))
            assert count_cell == gauge(26)
            assert_same_view(agent)

    asyncio.run(scenario())


def test_a_missed_commit_makes_the_view_read_the_store_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as agent:
            await agent.manager.raise_alarm("sync-failed", "cm1")
            agent.service._closed = True  # the feed's commits go nowhere: a missed one
            missed = await agent.manager.raise_alarm("sync-failed", "cm2")
            await agent.manager.raise_alarm("sync-failed", "cm2")  # a repeat, missed too
            agent.service._closed = False
            await agent.manager.raise_alarm("element-unreachable", "cm3")
            await until(lambda: agent.service.data.seq == agent.manager.last_seq, within=10)
            count = agent.service.data.alarms.cell(missed.alarm["id"], 12)
            assert count == counter(2)
            assert_same_view(agent)

    asyncio.run(scenario())


def test_element_and_distribution_changes_show_without_an_alarm_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as agent:
            engine, service = agent.engine, agent.service
            store = StoreAccess(engine)
            service.current_view()
            assert len(service.data.elements) == 0
            # As the API does it: in a worker thread, then a poll.
            cs1 = await asyncio.to_thread(add_element, engine, "cs1")
            service.current_view()
            assert list(service.data.elements.ids) == [cs1.id]
            assert sync_state(agent, cs1.id) == SYNC_STATE_NUMBER["never"]

            await asyncio.to_thread(store.elements.set_state, cs1.id, sync_state="running")
            service.current_view()
            assert sync_state(agent, cs1.id) == SYNC_STATE_NUMBER["running"]

            # A sync's cursor update shows nothing new: the element table is not read.
            generation = service.watch.generation if service.watch else -1
            store.objects.apply_changes(cs1.id, [], 0, cursor=7)
            assert service.watch is not None
            assert service.watch.generation == generation

            # Refresher, not a poll: the table follows a change without any request.
            await asyncio.to_thread(store.elements.set_state, cs1.id, sharing=True)
            await until(
                lambda: sharing_state(agent, cs1.id) == SHARING_STATE_NUMBER["sharing"], within=10
            )

            with store.begin() as conn:
                store.distributions.add(
                    conn,
                    [(cs1.id, "cs1")],
                    [Change("user", "u1", "add", {"name": "U"})],
                    "hub",
                    datetime.now(UTC),
                )
            (row,) = store.distribution_admin.listed(element_id=cs1.id)
            assert errors(agent, cs1.id) == gauge(0)
            outcome = Outcome(done=[], rejected=[(row, "refused")], untried=[])
            await asyncio.to_thread(store.distributions.settle, cs1.id, outcome, 30)
            service.current_view()
            assert errors(agent, cs1.id) == gauge(1)

            await asyncio.to_thread(store.elements.remove, "cs1")
            service.current_view()
            assert len(service.data.elements) == 0
            assert_same_view(agent)

    asyncio.run(scenario())


# ------------------------------------------------------------------ helpers
def add_element(engine: Engine, name: str) -> Element:
    ring = KeyRing([StoreKey.generate()], Path("test.key"))
    return StoreAccess(engine).elements.add(
        name, "call-server", "http://127.0.0.1:9", "http", 0, None, ring=ring
    )


def _cell(agent: Agent, column: str, element_id: int) -> bytes | None:
    oid = (*agent.service.oids[column], element_id)
    return agent.service.data.elements.get(oid)


def sync_state(agent: Agent, element_id: int) -> int:
    return _enum(_cell(agent, "provsyncElementSyncState", element_id))


def sharing_state(agent: Agent, element_id: int) -> int:
    return _enum(_cell(agent, "provsyncElementSharingState", element_id))


def errors(agent: Agent, element_id: int) -> bytes | None:
    return _cell(agent, "provsyncElementDistributionErrors", element_id)


def _enum(cell: bytes | None) -> int:
    assert cell is not None
    assert cell[0] == 0x02  # INTEGER
    return int.from_bytes(cell[2:], "big")


def test_a_commit_larger_than_the_log_table_shows_its_newest_rows(tmp_path: Path) -> None:
    """Only the log rows the table keeps are encoded: the view still equals the store's."""

    async def scenario() -> None:
        async with running(tmp_path, log_size=5) as agent:
            manager = agent.manager
            commits: list[int] = []
            manager.add_commit_listener(lambda c: commits.append(len(c.notifications)))
            await asyncio.gather(*[manager.raise_alarm("sync-failed", f"cm{i}") for i in range(60)])
            agent.service.current_view()
            assert max(commits) > 5, commits  # some commit had more rows than the table
            assert list(agent.service.data.log.ids) == list(range(56, 61))
            assert_same_view(agent)

    asyncio.run(scenario())
