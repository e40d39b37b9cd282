"""Sync rules in-process: the engine over a SQLite store and a real alarm manager, the
element a fake in memory (checked against the connector contract's conformance suite)
and time a manual clock. No process, no sleep: each job runs to its end (``drain``).

The same rules against `provsync simulate` and a running agent: tests/test_sync.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.clock import now
from agent.config import SyncSettings
from agent.connectors.base import (
    ChangePage,
    ChangeRecord,
    Connector,
    ElementInfo,
    ObjectPage,
    ObjectRecord,
)
from agent.errors import (
    AuthIncorrect,
    AuthMissing,
    CursorGone,
    ElementNotFound,
    ElementUnreachable,
    NotifyRefused,
    UpdateRejected,
)
from agent.store.access import StoreAccess
from agent.store.database import Store
from agent.store.distributions import Distribution, Outcome, record_applied
from agent.store.elements import Credentials, Element
from agent.store.encryption import KeyRing, StoreKey
from agent.store.jobs import Job
from agent.store.models import OBJECTS
from agent.store.objects import record_delivered
from agent.store.shared_data import Change
from agent.sync.engine import SyncEngine
from agent.sync.init import SyncOptions
from agent.sync.notify import Notified
from tests.connector_conformance import ConnectorConformance
from tests.waiting import until

LOGIN = Credentials("admin", "s3cret-pass")
Objects = dict[tuple[str, str], Any]


# ------------------------------------------------------------------ the fake element
class FakeElement:
    """An element's data in memory: objects per class, a change log, faults to set."""

    def __init__(self, stations: int = 20, users: int = 10, version: str = "10.2.1") -> None:
        self.software_version = version
        self.credentials = LOGIN
        self.epoch_number = 1
        self.data: dict[str, dict[str, Any]] = {
            "user": {f"u{i:04d}": {"name": f"User {i}"} for i in range(users)},
            "station": {f"{70000 + i}": {"number": f"{70000 + i}"} for i in range(stations)},
            "dial-plan": {"main": {"prefixes": {"7": "extension"}}},
        }
        self.log: list[ChangeRecord] = []
        self.last_seq = 0
        self.kept_from = 0
        """The oldest sequence number ``changes`` may start after (older ones are gone)."""
        self.down = False
        self.rejected: list[tuple[str, str, str]] = []
        self.notify_sync = False
        """CM notify sync is on (the element says so in its info)."""
        self.answering_changes: Callable[[], Awaitable[None]] | None = None
        """Awaited before each change page is answered (a fault, a delay)."""

    @property
    def epoch(self) -> str:
        return f"epoch-{self.epoch_number}"

    def connect(self, credentials: Credentials | None) -> FakeConnector:
        return FakeConnector(self, credentials)

    def change(
        self, user: str, op: str, cls: str, key: str, data: Any, *, notified: bool = False
    ) -> int:
        """A change made on the element (by its administrators when ``user`` is theirs);
        ``notified``: CM notify sync processed it."""
        if op == "delete":
            self.data.setdefault(cls, {}).pop(key, None)
        else:
            self.data.setdefault(cls, {})[key] = data
        self.last_seq += 1
        self.log.append(ChangeRecord(self.last_seq, now(), user, op, cls, key, data, notified))
        return self.last_seq

    def new_epoch(self) -> None:
        """Restored from a backup: the log starts again in a new epoch."""
        self.epoch_number += 1
        self.log.clear()
        self.kept_from = self.last_seq

    def reject(self, cls: str, prefix: str, reason: str) -> None:
        self.rejected.append((cls, prefix, reason))

    def wipe(self) -> None:
        for objects in self.data.values():
            objects.clear()

    def objects(self) -> Objects:
        return {(cls, key): data for cls, found in self.data.items() for key, data in found.items()}


class FakeConnector(Connector):
    """The connector contract over a :class:`FakeElement`."""

    def __init__(self, element: FakeElement, credentials: Credentials | None) -> None:
        super().__init__("fake://element", credentials)
        self.element = element

    def _answer(self) -> FakeElement:
        element = self.element
        if element.down:
            raise ElementUnreachable("fake://element: connection refused")
        if self.credentials is None:
            raise AuthMissing("fake://element: credentials required")
        if self.credentials != element.credentials:
            raise AuthIncorrect("fake://element: wrong username or password")
        return element

    async def info(self) -> ElementInfo:
        element = self._answer()
        return ElementInfo(
            "fake-1",
            "call-server",
            element.software_version,
            element.epoch,
            tuple(element.data),
            element.last_seq,
            {cls: len(found) for cls, found in element.data.items()},
            element.notify_sync,
        )

    async def objects(
        self,
        cls: str,
        *,
        after: str | None = None,
        snapshot: str | None = None,
        limit: int = 1000,
    ) -> ObjectPage:
        element = self._answer()
        if snapshot is not None and snapshot != element.epoch:
            raise CursorGone(f"snapshot {snapshot} is gone")
        keys = sorted(k for k in element.data[cls] if after is None or k > after)
        page = tuple(ObjectRecord(k, element.data[cls][k]) for k in keys[:limit])
        following = page[-1].key if len(keys) > limit else None
        return ObjectPage(element.epoch, page, following)

    async def changes(self, after: int, *, epoch: str | None, limit: int = 1000) -> ChangePage:
        element = self._answer()
        if (epoch is not None and epoch != element.epoch) or after < element.kept_from:
            raise CursorGone(f"the change log does not reach {after} in {epoch}")
        found = tuple(c for c in element.log if c.seq > after)[:limit]
        if element.answering_changes is not None:
            await element.answering_changes()
        return ChangePage(element.epoch, found, element.last_seq)

    async def apply(
        self, cls: str, key: str, op: str, data: dict[str, Any] | None, *, user: str
    ) -> int:
        element = self._answer()
        for rejected_cls, prefix, reason in element.rejected:
            if cls == rejected_cls and key.startswith(prefix):
                raise UpdateRejected(reason)
        return element.change(user, op, cls, key, data)


class TestFakeElementConformance(ConnectorConformance):
    """The fake keeps the contract the real drivers keep."""

    @pytest.fixture
    def element(self) -> FakeElement:
        return FakeElement()


# ------------------------------------------------------------------ the manual clock
class ManualClock:
    """Time that moves only when a test says; sleepers wake when it passes them."""

    def __init__(self) -> None:
        self.at = now()
        self.elapsed = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.elapsed + seconds, woken))
        await woken

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        self.elapsed += seconds
        for due, woken in self._sleepers:
            if due <= self.elapsed and not woken.done():
                woken.set_result(None)
        self._sleepers = [(due, w) for due, w in self._sleepers if not w.done()]


# ------------------------------------------------------------------ the harness
class Hub:
    """A sync engine whose elements are fakes by address (``fake://<name>``)."""

    def __init__(self, store: Store, manager: AlarmManager, **settings: Any) -> None:
        self.store = StoreAccess(store.engine)
        self.manager = manager
        self.clock = ManualClock()
        self.fakes: dict[str, FakeElement] = {}
        self.engine = SyncEngine(
            SyncSettings(**{"escalate_after_changes": 5, "page_size": 7, **settings}),
            manager,
            self.store,
            KeyRing([StoreKey.generate()], Path("test.key")),
            clock=self.clock,
            connector_factory=self._connect,
        )

    def _connect(
        self, element: Element, credentials: Credentials | None, *, timeout: float, retries: int
    ) -> Connector:
        return self.fakes[element.address.removeprefix("http://")].connect(credentials)

    async def add(
        self, name: str, fake: FakeElement, credentials: Credentials | None = LOGIN, **extra: Any
    ) -> Job:
        """Add ``fake`` as element ``name`` and run the initialization that follows."""
        self.fakes[name] = fake
        _, job_id = await self.engine.elements.add(
            name, "call-server", f"http://{name}", "http", credentials=credentials, **extra
        )
        return await self.finished(job_id)

    async def sync(self, kind: str, name: str = "cm1", options: SyncOptions | None = None) -> Job:
        return await self.finished(await self.engine.request(name, kind, "manual", options))

    async def finished(self, job_id: int) -> Job:
        await self.engine.jobs.drain()
        job = await asyncio.to_thread(self.store.jobs.get, job_id)
        assert job is not None
        return job

    def objects(self, name: str = "cm1") -> Objects:
        """The hub's copy of the element's objects."""
        element = self.store.elements.get(name)
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(OBJECTS.c.cls, OBJECTS.c.key, OBJECTS.c.data).where(
                    OBJECTS.c.element_id == element.id
                )
            )
            return {(cls, key): json.loads(data) for cls, key, data in rows}

    def active(self, type_id: str, resource: str = "cm1") -> bool:
        return self.manager.is_active(type_id, resource)

    def events(self, type_id: str) -> list[dict[str, Any]]:
        return queries.list_events(self.store.engine, type_id=type_id)


@pytest.fixture
def rules_manager(sqlite_store: Store) -> Iterator[AlarmManager]:
    started = AlarmManager(sqlite_store.engine, Catalog())
    started.start()
    yield started
    started.stop()


class RunWithHub(Protocol):
    def __call__(self, scenario: Callable[[Hub], Awaitable[None]], **settings: Any) -> None: ...


@pytest.fixture
def with_hub(sqlite_store: Store, rules_manager: AlarmManager) -> RunWithHub:
    """Run a scenario with a started hub (``settings``: its [sync] ones), in an event loop
    of its own."""

    def run(scenario: Callable[[Hub], Awaitable[None]], **settings: Any) -> None:
        async def started() -> None:
            hub = Hub(sqlite_store, rules_manager, **settings)
            await hub.engine.start()
            try:
                await scenario(hub)
            finally:
                await hub.engine.stop()

        asyncio.run(started())

    return run


# ------------------------------------------------------------------ the rules
def test_adding_an_element_runs_its_initialization(with_hub: RunWithHub) -> None:
    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        job = await hub.add("cm1", fake)
        assert (job.kind, job.trigger, job.state) == ("init", "add", "done"), job.error
        assert hub.objects() == fake.objects()
        element = hub.store.elements.get("cm1")
        assert (element.sync_state, element.software_version) == ("idle", "10.2.1")
        assert element.last_init_ok
        assert element.last_sync_at == hub.clock.at, "stamped by the injected clock"
        assert job.ended_at == hub.clock.at
        assert [e["type"] for e in hub.events("init-sync-completed")] == ["init-sync-completed"]

    with_hub(scenario)


def test_incremental_applies_the_change_log_but_the_hubs_own_writes(with_hub: RunWithHub) -> None:
    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        fake.change("tech", "create", "station", "77001", {"number": "77001"})
        fake.change("tech", "update", "user", "u0000", {"name": "Renamed"})
        fake.change("provsync", "create", "station", "77002", {"n": 1})
        job = await hub.sync("incremental")
        assert (job.kind, job.state) == ("incremental", "done"), job.error
        assert job.counts == {"applied": 2, "skipped_own": 1, "cursor": 3}
        hub_copy = hub.objects()
        assert hub_copy[("station", "77001")] == {"number": "77001"}
        assert hub_copy[("user", "u0000")] == {"name": "Renamed"}
        # The hub's own update is not pulled (not counted as applied) but is in its copy:
        # the copy equals the element (issue 14, item 3).
        assert hub_copy[("station", "77002")] == {"n": 1}
        assert hub_copy == fake.objects()
        again = await hub.sync("incremental")
        assert again.counts["applied"] == 0

    with_hub(scenario)


def test_more_pending_changes_than_the_limit_escalate_to_an_initialization(
    with_hub: RunWithHub,
) -> None:
    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        for index in range(6):
            fake.change("tech", "create", "station", f"7{index:04d}", {"n": index})
        job = await hub.sync("incremental")
        assert (job.kind, job.state) == ("init", "done"), job.error
        assert "6 changes are pending, more than 5" in (job.reason or "")
        (escalated,) = hub.events("sync-escalated")
        assert "6 changes are pending" in escalated["text"]
        assert hub.objects() == fake.objects()

    with_hub(scenario)


def test_an_upgraded_element_stops_the_incremental_until_an_initialization(
    with_hub: RunWithHub,
) -> None:
    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        fake.software_version = "10.2.2"
        fake.change("tech", "create", "station", "71001", {"n": 1})
        job = await hub.sync("incremental")
        assert (job.kind, job.state) == ("incremental", "failed"), "no silent switch"
        assert "upgraded from 10.2.1 to 10.2.2" in (job.error or "")
        assert ("station", "71001") not in hub.objects()
        assert hub.active("init-sync-required")
        assert hub.store.elements.get("cm1").sync_state == "init-required"
        assert (await hub.sync("init")).state == "done"
        assert not hub.active("init-sync-required")
        assert not hub.active("sync-failed")
        assert hub.objects() == fake.objects()

    with_hub(scenario)


def test_contact_alarms_are_raised_by_what_fails_and_cleared_by_what_gets_through(
    with_hub: RunWithHub,
) -> None:
    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        missing = await hub.add("cm1", fake, credentials=None)
        assert missing.state == "failed"
        assert hub.active("auth-failed-missing")
        await hub.engine.elements.set_credentials("cm1", Credentials("admin", "wrong"))
        assert (await hub.sync("init")).state == "failed"
        assert hub.active("auth-failed-incorrect")
        assert not hub.active("auth-failed-missing"), "the credentials were sent this time"
        await hub.engine.elements.set_credentials("cm1", LOGIN)
        fake.down = True
        assert (await hub.sync("init")).state == "failed"
        assert hub.active("element-unreachable")
        # A failure clears every contact alarm but the one it raises (the rule as it
        # stands, although an unreachable element checked no credentials).
        assert not hub.active("auth-failed-incorrect")
        fake.down = False
        assert (await hub.sync("init")).state == "done"
        for type_id in ("element-unreachable", "auth-failed-incorrect", "sync-failed"):
            assert not hub.active(type_id), type_id

    with_hub(scenario)


def test_a_forced_initialization_empties_the_hub_only_when_confirmed(with_hub: RunWithHub) -> None:
    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        held = len(fake.objects())
        fake.wipe()
        plain = await hub.sync("init")
        assert plain.state == "failed"
        assert "nothing was deleted" in (plain.error or "")
        report = await hub.sync("force", options=SyncOptions(dry_run=True))
        assert report.state == "done"
        assert report.counts["would_delete"] == held
        refused = await hub.sync("force", options=SyncOptions())
        assert refused.state == "failed"
        assert "--yes" in (refused.error or "")
        assert len(hub.objects()) == held, "nothing deleted unconfirmed"
        # Confirmed for fewer than it would now delete (the dry run was older): refused.
        bounded = await hub.sync("force", options=SyncOptions(yes=True, max_delete=held - 1))
        assert bounded.state == "failed"
        assert f"would now delete {held} hub objects, more than the {held - 1}" in (
            bounded.error or ""
        )
        assert len(hub.objects()) == held, "nothing deleted beyond the confirmation"
        done = await hub.sync("force", options=SyncOptions(yes=True, max_delete=held))
        assert done.state == "done", done.error
        assert hub.objects() == {}
        assert hub.events("force-init-sync")[-1]["severity"] == "warning"

    with_hub(scenario)


def test_the_schedule_queues_an_incremental_when_the_clock_says_it_is_due(
    with_hub: RunWithHub,
) -> None:
    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake, interval=600)
        await hub.engine.jobs.schedule_round()
        await hub.engine.jobs.drain()
        assert [j.trigger for j in hub.store.jobs.recent("cm1")] == ["add"]
        hub.clock.advance(601)
        await hub.engine.jobs.schedule_round()
        await hub.engine.jobs.drain()
        last = hub.store.jobs.recent("cm1")[-1]
        assert (last.trigger, last.kind, last.state) == ("schedule", "incremental", "done")

    with_hub(scenario)


def test_removing_an_element_stops_its_syncs_tells_the_hooks_and_clears_its_alarms(
    with_hub: RunWithHub,
) -> None:
    class Hooks:
        def __init__(self) -> None:
            self.told: list[str] = []

        async def element_updated(self, name: str, how: str) -> None:
            self.told.append(f"{name} {how}")

        async def forget(self, element: Element) -> None:
            self.told.append(f"forget {element.name}")

    async def scenario(hub: Hub) -> None:
        hooks = Hooks()
        hub.engine.attach(hooks)
        fake = FakeElement()
        fake.down = True
        await hub.add("cm1", fake)
        assert hub.active("element-unreachable")
        hub.fakes["cm1-moved"] = fake
        await hub.engine.elements.update("cm1", url="http://cm1-moved")
        await hub.engine.elements.remove("cm1")
        assert hooks.told == ["cm1 given the address http://cm1-moved", "forget cm1"]
        assert not hub.active("element-unreachable")
        assert hub.store.elements.all() == []

    with_hub(scenario)


def test_removing_an_element_mid_sync_records_its_running_job_as_failed(
    with_hub: RunWithHub,
) -> None:
    class Stuck(FakeElement):
        """An element that answers nothing: its sync stays running."""

        def connect(self, credentials: Credentials | None) -> FakeConnector:
            connector = FakeConnector(self, credentials)

            async def info() -> ElementInfo:
                await asyncio.Event().wait()
                raise AssertionError("never answered")

            connector.info = info  # type: ignore[method-assign]
            return connector

    async def scenario(hub: Hub) -> None:
        hub.fakes["cm1"] = Stuck()
        _, job_id = await hub.engine.elements.add(
            "cm1", "call-server", "http://cm1", "http", credentials=LOGIN
        )
        for _ in range(500):
            job = await asyncio.to_thread(hub.store.jobs.get, job_id)
            assert job is not None
            if job.state == "running":
                break
            await asyncio.sleep(0.01)
        assert job.state == "running"
        await hub.engine.elements.remove("cm1")
        ended = await asyncio.to_thread(hub.store.jobs.get, job_id)
        assert ended is not None
        assert (ended.state, ended.error) == ("failed", "the element was removed")
        assert ended.ended_at is not None

    with_hub(scenario)


# ------------------------------------------------------------------ the vendor's rules (issue 14)
def test_a_full_init_object_change_asks_for_an_init_and_every_other_change_is_applied(
    with_hub: RunWithHub,
) -> None:
    """Item 1: a change of a full-initialization object does not freeze the element."""

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        fake.change("tech", "create", "station", "72001", {"n": 1})
        fake.change("tech", "update", "dial-plan", "main", {"prefixes": {"3": "extension"}})
        fake.change("tech", "create", "station", "72002", {"n": 2})
        job = await hub.sync("incremental")
        assert (job.kind, job.state) == ("incremental", "done"), job.error
        assert job.counts == {
            "applied": 2,
            "skipped_own": 0,
            "cursor": 3,
            "init_required": ["dial-plan main"],
        }
        hub_copy = hub.objects()
        assert hub_copy[("station", "72001")] == {"n": 1}
        assert hub_copy[("station", "72002")] == {"n": 2}, "changes after it are applied"
        assert hub_copy[("dial-plan", "main")] == {"prefixes": {"7": "extension"}}
        (alarm,) = queries.list_alarms(hub.store.engine, type_id="init-sync-required")
        assert alarm["resource"] == "cm1"
        assert "dial-plan main changed" in alarm["text"]
        assert not hub.active("sync-failed"), "not a failure of the incremental"
        assert hub.store.elements.get("cm1").sync_state == "init-required"
        # The next scheduled incremental goes on applying changes; the init stays required.
        fake.change("tech", "update", "user", "u0001", {"name": "Later"})
        later = await hub.sync("incremental")
        assert (later.state, later.counts["applied"]) == ("done", 1)
        assert "init_required" not in later.counts
        assert hub.objects()[("user", "u0001")] == {"name": "Later"}
        assert hub.active("init-sync-required")
        assert hub.store.elements.get("cm1").sync_state == "init-required"
        assert (await hub.sync("init")).state == "done"
        assert not hub.active("init-sync-required")
        assert hub.store.elements.get("cm1").sync_state == "idle"
        assert hub.objects() == fake.objects()

    with_hub(scenario)


def test_only_the_documents_system_parameters_ask_for_an_init(with_hub: RunWithHub) -> None:
    """Item 2: the full-init list is the document's, other system parameters are
    synchronized incrementally."""
    documented = (
        "special-applications",
        "features",
        "cdr",
        "cust",
        "spec",
        "security",
        "country-options",
        "maintenance",
    )

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        fake.change("tech", "create", "system-parameter", "ip-options", {"ttl": 64})
        fake.change("tech", "create", "system-parameter", "coverage", {"answer": 3})
        job = await hub.sync("incremental")
        assert (job.state, job.counts["applied"]) == ("done", 2), job.counts
        assert not hub.active("init-sync-required")
        assert hub.objects()[("system-parameter", "ip-options")] == {"ttl": 64}
        for form in documented:
            fake.change("tech", "update", "system-parameter", form, {"changed": True})
        fake.change("tech", "create", "cabinet", "2", {"location": "annex"})
        fake.change("tech", "create", "board", "2B01", {"type": "TN799"})
        job = await hub.sync("incremental")
        assert job.counts["applied"] == 0
        assert job.counts["init_required"] == [
            *(f"system-parameter {form}" for form in documented),
            "cabinet 2",
            "board 2B01",
        ]

    with_hub(scenario, escalate_after_changes=50)


def test_the_full_init_list_is_the_documents_and_refuses_a_malformed_entry() -> None:
    assert SyncSettings().full_init_objects == (
        "system-parameter:special-applications",
        "system-parameter:features",
        "system-parameter:cdr",
        "system-parameter:cust",
        "system-parameter:spec",
        "system-parameter:security",
        "system-parameter:country-options",
        "system-parameter:maintenance",
        "dial-plan",
        "cabinet",
        "board",
    )
    with pytest.raises(ValidationError, match="not an object class"):
        SyncSettings(full_init_objects=("Board Of Directors",))
    with pytest.raises(ValidationError, match="replaced by full_init_objects"):
        SyncSettings.model_validate({"full_sync_only_classes": ["board"]})


def test_the_elements_registered_login_is_the_hubs_own_user_per_element(
    with_hub: RunWithHub,
) -> None:
    """Item 4: a change by the login the element is registered with is the hub's own,
    not pulled (kept in the copy as the element has it), and that holds per element:
    another element's login is somebody else there."""

    async def scenario(hub: Hub) -> None:
        cm1, cm2 = FakeElement(), FakeElement()
        cm2.credentials = Credentials("smgr2", "other-pass")
        await hub.add("cm1", cm1)
        await hub.add("cm2", cm2, credentials=Credentials("smgr2", "other-pass"))
        for fake in (cm1, cm2):
            fake.change("admin", "create", "station", "73001", {"by": "admin"})
            fake.change("smgr2", "create", "station", "73002", {"by": "smgr2"})
            fake.change("provsync", "create", "station", "73003", {"by": "provsync"})
        first = await hub.sync("incremental", "cm1")
        second = await hub.sync("incremental", "cm2")
        assert (first.counts["applied"], first.counts["skipped_own"]) == (1, 2), "admin"
        assert (second.counts["applied"], second.counts["skipped_own"]) == (1, 2), "smgr2"
        assert hub.objects("cm1") == cm1.objects()
        assert hub.objects("cm2") == cm2.objects()

    with_hub(scenario)


def test_an_upgraded_element_whose_epoch_also_changed_stops_with_an_error(
    with_hub: RunWithHub,
) -> None:
    """Item 5: no silent escalation, whatever else changed."""

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        fake.software_version = "10.2.2"
        fake.new_epoch()
        fake.change("tech", "create", "station", "74001", {"n": 1})
        job = await hub.sync("incremental")
        assert (job.kind, job.state) == ("incremental", "failed")
        assert "upgraded from 10.2.1 to 10.2.2" in (job.error or "")
        assert hub.events("sync-escalated") == []
        assert hub.active("init-sync-required")
        assert ("station", "74001") not in hub.objects()

    with_hub(scenario)


def test_an_emptied_element_raises_an_alarm_and_the_failed_init_event(
    with_hub: RunWithHub,
) -> None:
    """Item 6: the refusal to wipe the hub is not silent."""

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        fake.wipe()
        job = await hub.sync("init")
        assert job.state == "failed"
        assert "nothing was deleted" in (job.error or "")
        (alarm,) = queries.list_alarms(hub.store.engine, type_id="element-emptied")
        assert alarm["resource"] == "cm1"
        assert alarm["severity"] == "major"
        hint = hub.manager.catalog.get("element-emptied").resolution
        assert "provsync sync force" in hint
        assert "--dry-run" in hint
        (event,) = hub.events("init-sync-failed")
        assert "returned no data" in event["text"]
        assert hub.store.elements.get("cm1").sync_state == "failed"
        # The scheduled incremental escalates, meets the same: still one alarm, repeated.
        assert (await hub.sync("incremental")).state == "failed"
        assert len(queries.list_alarms(hub.store.engine, type_id="element-emptied")) == 1
        done = await hub.sync("force", options=SyncOptions(yes=True))
        assert done.state == "done", done.error
        assert not hub.active("element-emptied")
        assert hub.store.elements.get("cm1").sync_state == "idle"

    with_hub(scenario)


def test_changes_processed_by_cm_notify_sync_are_not_synchronized(with_hub: RunWithHub) -> None:
    """Item 7: what notify sync applied moved the cursor, so the incremental starts after
    it; a processed change still ahead of the cursor (a store restored since) is taken."""

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        fake.notify_sync = True
        seq = fake.change("tech", "create", "station", "75001", {"n": 1}, notified=True)
        notified = Notified(seq, "tech", "create", "station", "75001", {"n": 1})
        assert await hub.engine.notify.received("cm1", fake.epoch, [notified]) == ["applied"]
        assert hub.objects()[("station", "75001")] == {"n": 1}, "at once"
        fake.change("tech", "create", "station", "75002", {"n": 2})
        job = await hub.sync("incremental")
        assert job.counts == {"applied": 1, "skipped_own": 0, "cursor": 2}
        # The store restored from before 75003 was notified: the log says processed, the
        # copy lacks it.
        fake.change("tech", "create", "station", "75003", {"n": 3}, notified=True)
        job = await hub.sync("incremental")
        assert (job.counts["applied"], job.counts["notify_sync_missed"]) == (1, 1)
        assert hub.objects() == fake.objects()

    with_hub(scenario)


def test_a_failed_incremental_reports_what_it_applied_before_it_failed(
    with_hub: RunWithHub,
) -> None:
    """Item 14: a stopped incremental's counts are not empty when it applied changes."""

    pages = 0

    async def gone_after_the_first_page() -> None:
        nonlocal pages
        pages += 1
        if pages > 1:
            raise ElementUnreachable("fake://element: gone mid-sync")

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        fake.answering_changes = gone_after_the_first_page
        for index in range(3):
            fake.change("tech", "create", "station", f"7600{index}", {"n": index})
        job = await hub.sync("incremental")
        assert job.state == "failed"
        assert job.counts == {"applied": 2, "skipped_own": 0, "cursor": 2}
        assert hub.store.elements.get("cm1").cursor == 2
        assert hub.active("element-unreachable")

    with_hub(scenario, page_size=2)


def test_a_notify_sync_notification_is_applied_in_log_order_after_the_cursor(
    with_hub: RunWithHub,
) -> None:
    """CM notify sync, the hub's side: what it refuses whole, what it leaves to the
    incremental (which it queues), and the cursor it moves."""

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        notify = hub.engine.notify.received
        with pytest.raises(ElementNotFound):
            await notify("cm1", fake.epoch, [])
        fake.down = True
        await hub.add("cm1", fake)
        with pytest.raises(NotifyRefused, match="never initialized"):
            await notify("cm1", fake.epoch, [Notified(1, "tech", "create", "station", "1", {})])
        fake.down = False
        assert (await hub.sync("init")).state == "done"
        fake.change("tech", "create", "station", "76000", {"n": 0})
        assert (await hub.sync("incremental")).counts["cursor"] == 1
        changes = [
            Notified(1, "tech", "update", "station", "76000", {"n": "old"}),
            Notified(2, "tech", "create", "station", "76001", {"n": 1}),
            Notified(3, "admin", "create", "station", "76002", {"n": 2}),
            Notified(4, "tech", "delete", "station", "76000", None),
            Notified(5, "tech", "update", "board", "1A01", {"type": "x"}),
            Notified(6, "tech", "create", "station", "76003", {"n": 3}),
        ]
        for change in changes[1:]:
            fake.change(change.user, change.op, change.cls, change.key, change.data)
        jobs_before = len(hub.store.jobs.recent("cm1"))
        results = await notify("fake-1", fake.epoch, changes)  # the element's own id
        assert results == [
            "ignored: the hub has it already",
            "applied",
            "applied",
            "applied",
            "ignored: synchronized by an initialization only; an incremental sync takes it",
            "ignored: an earlier change (or the hub's own update) is not synchronized yet; "
            "an incremental sync takes it",
        ]
        copy = hub.objects()
        assert copy[("station", "76001")] == {"n": 1}
        assert copy[("station", "76002")] == {"n": 2}, "the hub's own user: kept, as applied"
        assert ("station", "76000") not in copy
        assert ("station", "76003") not in copy
        assert hub.store.elements.get("cm1").cursor == 4
        # The rest went to an incremental, queued by the notification.
        await hub.engine.jobs.drain()
        (queued,) = hub.store.jobs.recent("cm1")[jobs_before:]
        assert (queued.trigger, queued.kind, queued.state) == ("notify", "incremental", "done")
        assert queued.counts["init_required"] == ["board 1A01"]
        assert hub.objects()[("station", "76003")] == {"n": 3}
        # A gap: the change before it was not notified.
        fake.change("tech", "create", "station", "76004", {"n": 4})
        gap = fake.change("tech", "create", "station", "76005", {"n": 5})
        later = [Notified(gap, "tech", "create", "station", "76005", {"n": 5})]
        assert (await notify("cm1", fake.epoch, later))[0].startswith("ignored: an earlier")
        await hub.engine.jobs.drain()
        # A hub update delivered after the cursor: an older change notified now would
        # overwrite it in the copy, so it waits for the incremental too.
        element = hub.store.elements.get("cm1")
        local = fake.change("tech", "update", "station", "76005", {"n": "local"})
        delivered = fake.change("provsync", "update", "station", "76005", {"n": "hub"})
        with hub.store.engine.begin() as conn:
            record_applied(conn, element.id, delivered)
            record_delivered(conn, element.id, [("station", "76005", {"n": "hub"}, delivered)])
        older = [Notified(local, "tech", "update", "station", "76005", {"n": "local"})]
        assert (await notify("cm1", fake.epoch, older))[0].startswith("ignored: an earlier")
        assert hub.objects()[("station", "76005")] == {"n": "hub"}, "not overwritten"
        await hub.engine.jobs.drain()
        assert hub.objects() == {k: v for k, v in fake.objects().items() if k[0] != "board"}
        with pytest.raises(NotifyRefused, match="another data epoch"):
            await notify("cm1", "epoch-old", [Notified(9, "tech", "create", "station", "7", {})])

    with_hub(scenario, escalate_after_changes=50)


def test_a_notification_is_refused_while_a_sync_of_the_element_runs(
    with_hub: RunWithHub,
) -> None:
    """The job's pages may be older than the notified change: it takes the change."""
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        fake.answering_changes = slow
        release.set()
        await hub.add("cm1", fake)
        release.clear()
        job_id = await hub.engine.request("cm1", "incremental")
        element = hub.store.elements.get("cm1")
        await until(lambda: hub.engine.jobs.running(element.id))
        with pytest.raises(NotifyRefused, match="a sync of cm1 is running"):
            await hub.engine.notify.received(
                "cm1", fake.epoch, [Notified(1, "tech", "create", "station", "77", {})]
            )
        release.set()
        assert (await hub.finished(job_id)).state == "done"
        assert ("station", "77") not in hub.objects()

    with_hub(scenario)


def test_a_delivery_recorded_after_the_incremental_passed_it_keeps_the_later_change(
    with_hub: RunWithHub,
) -> None:
    """The hub's copy records a delivered update only where the incremental has not
    been: there it applied the update in log order, and a later change after it."""

    async def scenario(hub: Hub) -> None:
        fake = FakeElement()
        await hub.add("cm1", fake)
        element = hub.store.elements.get("cm1")
        distributions = hub.store.distributions

        def sent(key: str, data: dict[str, str]) -> Distribution:
            with hub.store.engine.begin() as conn:
                distributions.add(
                    conn, [(element.id, "cm1")], [Change("user", key, "update", data)], "hub", now()
                )
            (row,) = distributions.take_batch(element.id, 10)
            return row

        first = sent("u0001", {"name": "Hub"})
        applied_at = fake.change("provsync", "update", "user", "u0001", {"name": "Hub"})
        fake.change("tech", "update", "user", "u0001", {"name": "Later"})
        assert (await hub.sync("incremental")).counts["applied"] == 1
        distributions.settle(element.id, Outcome(done=[first], seqs={first.id: applied_at}), 1.0)
        assert hub.objects()[("user", "u0001")] == {"name": "Later"}, "not undone"
        second = sent("u0002", {"name": "Hub 2"})
        applied_at = fake.change("provsync", "update", "user", "u0002", {"name": "Hub 2"})
        distributions.settle(element.id, Outcome(done=[second], seqs={second.id: applied_at}), 1.0)
        assert hub.objects()[("user", "u0002")] == {"name": "Hub 2"}, "recorded at once"
        assert hub.objects() == fake.objects()

    with_hub(scenario)
