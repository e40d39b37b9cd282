"""The Flow Through Provisioning document's rules that issue 14 found the agent breaking.

In-process: the sync engine and the sharing service over a SQLite store and a real alarm
manager, the elements fakes (tests/test_sync_rules.py). Against real processes (`provsync
run`, `provsync simulate --hub`) where the CLI's output or a restart is the point.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from agent.alarms.manager import AlarmManager
from agent.config import SharingSettings, SyncSettings
from agent.connectors.base import ElementInfo
from agent.sharing.service import SharingService
from agent.store.access import StoreAccess
from agent.store.database import Store
from agent.store.distributions import applied_key
from agent.store.elements import Credentials, Element
from tests.conftest import AgentProcess
from tests.sharing_group import FAST, SharingGroup
from tests.test_sync_rules import LOGIN, FakeConnector, FakeElement, Hub
from tests.test_sync_rules import rules_manager as rules_manager  # a fixture
from tests.waiting import until, wait_for

WRONG = Credentials("admin", "not-the-password")


# ------------------------------------------------------------------ the in-process harness
class Group:
    """A hub with its sync engine and its sharing service, the elements fakes."""

    def __init__(self, hub: Hub, sharing: SharingService) -> None:
        self.hub = hub
        self.sharing = sharing
        self.manager = hub.manager

    async def add(
        self, name: str, fake: FakeElement, credentials: Credentials | None = LOGIN
    ) -> None:
        await self.hub.add(name, fake, credentials)

    async def add_messaging(self, name: str, uses: list[str]) -> None:
        self.hub.fakes[name] = FakeElement()
        _, job = await self.hub.engine.elements.add(
            name, "messaging", f"http://{name}", "http", credentials=LOGIN, uses=uses
        )
        await self.hub.finished(job)

    async def share(self, *names: str) -> None:
        """The elements start sharing; the first syncs to the hub: the group shares."""
        for name in names:
            await self.sharing.start_sharing(name, "10.2.1")
        job = await self.sharing.request_sync(names[0])
        await until(lambda: self._job_state(job) in ("done", "failed"))
        assert self._job_state(job) == "done"

    def _job_state(self, job: int) -> str:
        found = self.hub.store.jobs.get(job)
        assert found is not None
        return found.state

    def active(self, type_id: str, resource: str) -> dict[str, Any] | None:
        for alarm in self.alarms(type_id):
            if alarm["resource"] == resource:
                return alarm
        return None

    def alarms(self, type_id: str) -> list[dict[str, Any]]:
        from agent.alarms import queries

        found: list[dict[str, Any]] = queries.list_alarms(self.hub.store.engine, type_id=type_id)
        return found

    def events(self, type_id: str) -> list[dict[str, Any]]:
        return self.hub.events(type_id)


RunGroup = Callable[..., None]


@pytest.fixture
def with_group(sqlite_store: Store, rules_manager: AlarmManager, tmp_path: Path) -> RunGroup:
    """Run a scenario with a started hub and sharing service, in an event loop of its own."""

    def run(scenario: Callable[[Group], Awaitable[None]], **sharing: Any) -> None:
        async def started() -> None:
            hub = Hub(sqlite_store, rules_manager, timeout=0.3)
            service = SharingService(
                SharingSettings(**{"retry_initial": 0.05, "retry_max": 0.2, **sharing}),
                SyncSettings(timeout=0.3, retries=0, page_size=7),
                rules_manager,
                hub.store,
                tmp_path,
                "test-store",
                hub.engine.ring,
                connector_factory=hub._connect,
                clock=hub.clock,
            )
            hub.engine.attach(service)
            await hub.engine.start()
            await service.start()
            try:
                await scenario(Group(hub, service))
            finally:
                await service.stop()
                await hub.engine.stop()

        asyncio.run(started())

    return run


class HangingElement(FakeElement):
    """Takes the connection and never answers (a hung peer)."""

    def connect(self, credentials: Credentials | None) -> FakeConnector:
        connector = FakeConnector(self, credentials)

        async def info() -> ElementInfo:
            await asyncio.Event().wait()
            raise AssertionError("never answered")

        connector.info = info  # type: ignore[method-assign]
        return connector


# ------------------------------------------------------------------ item 8: credentials
def test_saving_credentials_tests_them_at_once(with_group: RunGroup) -> None:
    """The authentication alarms' own fix works at once: right credentials clear them,
    wrong ones keep (or raise) the right alarm, an element that is down or hung gives
    element-unreachable within the bound, never a hang."""

    async def scenario(group: Group) -> None:
        lifecycle = group.hub.engine.elements
        fake = FakeElement()
        await group.add("cm1", fake, WRONG)  # its initialization is refused
        assert group.active("auth-failed-incorrect", "cm1")
        outcome = await lifecycle.set_credentials("cm1", LOGIN)
        assert not group.active("auth-failed-incorrect", "cm1")
        assert "accepted" in outcome
        await lifecycle.set_credentials("cm1", WRONG)
        alarm = group.active("auth-failed-incorrect", "cm1")
        assert alarm is not None
        assert not group.active("auth-failed-missing", "cm1")
        # Down: nothing disproves the refusal, and the element is unreachable.
        fake.down = True
        outcome = await asyncio.wait_for(lifecycle.set_credentials("cm1", LOGIN), 5.0)
        assert "did not answer" in outcome
        assert group.active("element-unreachable", "cm1")
        assert group.active("auth-failed-incorrect", "cm1")
        fake.down = False
        await lifecycle.set_credentials("cm1", LOGIN)
        assert not group.active("element-unreachable", "cm1")
        assert not group.active("auth-failed-incorrect", "cm1")
        # Hung: the test is bounded by [sync] timeout, it does not hold the operator.
        group.hub.fakes["cm2"] = HangingElement()
        await group.hub.engine.elements.add("cm2", "call-server", "http://cm2", "http")
        outcome = await asyncio.wait_for(lifecycle.set_credentials("cm2", LOGIN), 5.0)
        assert "did not answer" in outcome
        assert group.active("element-unreachable", "cm2")

    with_group(scenario)


def test_set_credentials_clears_the_critical_alarm_through_the_cli(
    agent_factory: Any, tmp_path: Path
) -> None:
    hub = agent_factory(FAST).start()
    group = SharingGroup(hub, tmp_path)
    try:
        element = group.add("cs1")
        with hub.http() as http:
            http.put(
                "/api/v1/elements/cs1/credentials",
                json={"username": "admin", "password": "wrong"},
            )
            job = http.post("/api/v1/elements/cs1/sync", json={"kind": "init"}).json()["job"]
        hub.wait_job(job, within=30)
        assert group.alarms("auth-failed-incorrect", "cs1")
        password = tmp_path / "right"
        password.write_text(element.credentials.password + "\n")
        saved = hub.cli(
            "elements",
            "set-credentials",
            "cs1",
            "--username",
            "admin",
            "--password-file",
            str(password),
        )
        assert "the credentials were accepted by cs1" in saved.stdout
        # Cleared when the command returns: no sync was queued for it.
        assert not group.alarms("auth-failed-incorrect", "cs1")
        assert group.cleared("auth-failed-incorrect", "cs1")
    finally:
        group.stop()


def test_the_sender_logs_in_with_the_credentials_saved_last(
    agent_factory: Any, tmp_path: Path
) -> None:
    """Its kept connection was made with the old credentials: it must not go on with them."""
    hub = agent_factory(FAST).start()
    group = SharingGroup(hub, tmp_path)
    try:
        cs1 = group.add("cs1")
        assert group.start_sharing("cs1").status_code == 200
        assert group.sync("cs1")["state"] == "done"
        hub.cli("objects", "add", "user", "first", "name=First")
        wait_for("first delivered", lambda: ("user", "first") in cs1.objects())
        with hub.http() as http:
            answer = http.put(
                "/api/v1/elements/cs1/credentials",
                json={"username": "admin", "password": "wrong"},
            ).json()
        assert answer["tested"].startswith("the credentials were refused by cs1")
        hub.cli("objects", "add", "user", "second", "name=Second")
        refused = wait_for(
            "the refused delivery",
            lambda: [
                d
                for d in group.get("/distributions", element="cs1")
                if d["key"] == "second" and d["error"]
            ],
        )
        assert "refused" in refused[0]["error"]
        assert ("user", "second") not in cs1.objects()
        assert group.alarms("auth-failed-incorrect", "cs1")
    finally:
        group.stop()


# ------------------------------------------------------------------ item 9: restore
def _backup(agent: AgentProcess, target: Path) -> None:
    with sqlite3.connect(agent.data_dir / "provsync.db") as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()


def test_a_store_restored_onto_a_new_server_is_found_by_the_elements(
    agent_factory: Any, tmp_path: Path
) -> None:
    """No identity file (a new or reinstalled server): the element holds a hub update the
    restored store has no record of, so sharing is disabled (ftp-inactive, naming cs1)."""
    hub = agent_factory(FAST).start()
    group = SharingGroup(hub, tmp_path)
    try:
        group.add("cs1")
        assert group.start_sharing("cs1").status_code == 200
        group.sync("cs1")
        hub.cli(
            "objects", "set", "station", group.elements["cs1"].first_key("station"), "type=J100"
        )
        wait_for("applied", group.settled)
        # A restart on the same server after deliveries is no restore.
        assert hub.stop() == 0
        hub.start()
        wait_for("the store check", lambda: group.status().get("store_check", []) == [])
        assert not group.alarms("ftp-inactive")
        backup = tmp_path / "backup.db"
        _backup(hub, backup)
        key = group.elements["cs1"].first_key("user")
        hub.cli("objects", "set", "user", key, "name=After The Backup")
        wait_for("applied", group.settled)
        assert hub.stop() == 0
        shutil.copy(backup, hub.data_dir / "provsync.db")
        (hub.data_dir / "store-identity.json").unlink()  # the new server has none
        hub.start()
        (alarm,) = wait_for("ftp-inactive", lambda: group.alarms("ftp-inactive"))
        assert "cs1 holds a hub update this store has no record of" in alarm["text"]
        assert f"user {key}" in alarm["text"]
        # The friction: the hint names an element of the group, not a placeholder.
        assert "provsync sharing start cs1" in alarm["resolution"]
        assert "ELEMENT" not in alarm["resolution"]
        status = group.status()
        assert status["ftp_inactive"] is True
        assert status["state"] == "notSharing"
        # The way back is the usual one: Start Sharing, then a sync.
        assert group.start_sharing("cs1").status_code == 200
        group.sync("cs1")
        assert not group.alarms("ftp-inactive")
    finally:
        group.stop()


def test_an_update_in_flight_at_a_crash_is_not_taken_for_a_restore(
    with_group: RunGroup,
) -> None:
    """The element applied it, the store did not record it: a record in flight explains
    it (the witness must not raise ftp-inactive after every crash)."""

    async def scenario(group: Group) -> None:
        fake = FakeElement()
        await group.add("cm1", fake)
        await group.share("cm1")
        await group.sharing.hub_changes(
            [{"class": "user", "key": "u0001", "op": "update", "data": {"name": "New"}}], None
        )
        await until(lambda: fake.data["user"]["u0001"]["name"] == "New")
        store = group.hub.store
        element = store.elements.get("cm1")
        # What a crash between the element's answer and the outcome's commit leaves.
        fake.change("provsync", "update", "user", "u0002", {"name": "Sent"})
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO distributions (element_id, element, cls, key, op, data, origin, "
                "state, attempts, rejected, created_at, updated_at, next_attempt_at) VALUES "
                "(?, 'cm1', 'user', 'u0002', 'update', '{\"name\": \"Sent\"}', 'hub', "
                "'inflight', 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                (element.id,),
            )
        await group.sharing.stop()
        await group.sharing.start()
        witness = getattr(group.sharing, "_witness", None)
        await until(lambda: not getattr(witness, "checking", ()))
        assert not group.alarms("ftp-inactive")
        assert store.elements.get("cm1").sharing
        # It goes out again (updates are idempotent); then one nobody sent is a restore.
        await until(lambda: not store.distributions.open_counts())
        fake.change("provsync", "update", "user", "u0003", {"name": "Unknown"})
        await group.sharing.stop()
        await group.sharing.start()
        await until(lambda: bool(group.alarms("ftp-inactive")))
        assert not store.elements.get("cm1").sharing

    with_group(scenario)


def _put_distribution(
    store: Any, element_id: int, key: str, data: str, state: str, due: str = "CURRENT_TIMESTAMP"
) -> None:
    """A hub update of user ``key`` left in ``state`` (what a crash or a lost answer leaves)."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO distributions (element_id, element, cls, key, op, data, origin, "
            "state, attempts, rejected, created_at, updated_at, next_attempt_at) VALUES "
            f"(?, 'cm1', 'user', ?, 'update', ?, 'hub', ?, 1, 0, CURRENT_TIMESTAMP, "
            f"CURRENT_TIMESTAMP, {due})",
            (element_id, key, data, state),
        )


def _witnessing() -> bool:
    """A witness task still runs (its check, and the disable that follows a restore)."""
    return any(t.get_name().startswith("witness:") for t in asyncio.all_tasks())


async def _sharing_cm1(group: Group) -> tuple[FakeElement, StoreAccess, Element]:
    """cm1, a fake element, added, sharing and synced to the hub."""
    fake = FakeElement()
    await group.add("cm1", fake)
    await group.share("cm1")
    store = group.hub.store
    return fake, store, store.elements.get("cm1")


async def _delivered(group: Group, fake: FakeElement, name: str = "New") -> None:
    """A hub update reaches cm1 and is recorded: the store's mark is past it."""
    await group.sharing.hub_changes(
        [{"class": "user", "key": "u0001", "op": "update", "data": {"name": name}}], None
    )
    await until(lambda: fake.data["user"]["u0001"]["name"] == name)
    await until(lambda: not group.hub.store.distributions.open_counts())


def test_a_restored_store_sends_none_of_its_pending_updates(with_group: RunGroup) -> None:
    """The witness finds the restore while the sender waits for it: the sender must find
    sharing disabled, not send the restored store's stale update first."""

    async def scenario(group: Group) -> None:
        fake, store, element = await _sharing_cm1(group)
        await _delivered(group, fake)
        await group.sharing.stop()
        # The backup's state: a mark before that update, an update still to send.
        store.meta.set(applied_key(element.id), "0")
        _put_distribution(
            store, element.id, "u0002", '{"name": "Stale"}', "pending", "'2000-01-01'"
        )
        dispatcher = group.sharing._dispatcher
        sleep, asleep = dispatcher._sleep, asyncio.Event()

        async def watched(element_id: int, seconds: float) -> None:
            asleep.set()
            try:
                await sleep(element_id, seconds)
            finally:
                asleep.clear()

        dispatcher._sleep = watched  # type: ignore[method-assign]
        witness = group.sharing._witness
        check = witness._check

        async def once_the_sender_waits(*args: Any) -> str:
            # The sender is started after the witness: it must be waiting for the check.
            await until(
                lambda: any(t.get_name() == "distribution:cm1" for t in asyncio.all_tasks())
            )
            return await check(*args)

        witness._check = once_the_sender_waits  # type: ignore[method-assign]
        await group.sharing.start()
        # The sender waits for the witness; once it ended, the sender's next wait comes
        # after the round that would have sent the update.
        await until(lambda: not _witnessing() and asleep.is_set())
        assert group.alarms("ftp-inactive")
        assert fake.data["user"]["u0002"] == {"name": "User 2"}
        assert store.distributions.open_counts()[element.id].get("pending") == 1

    with_group(scenario)


def test_a_store_outage_during_the_check_keeps_the_sender_held(with_group: RunGroup) -> None:
    """No verdict yet is no verdict: the check waits for the store, the sender with it."""

    async def scenario(group: Group) -> None:
        fake, store, element = await _sharing_cm1(group)
        await _delivered(group, fake)
        await group.sharing.stop()
        store.meta.set(applied_key(element.id), "0")  # the backup's mark
        _put_distribution(
            store, element.id, "u0002", '{"name": "Stale"}', "pending", "'2000-01-01'"
        )
        real_get, reads, failures = store.meta.get, 0, 0

        def down_at_first(key: str) -> str | None:
            # The start's read goes through; the check's next two reads meet the outage.
            nonlocal reads, failures
            if key == applied_key(element.id):
                reads += 1
                if 2 <= reads <= 3:
                    failures += 1
                    raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("disk I/O"))
            return real_get(key)

        store.meta.get = down_at_first  # type: ignore[method-assign]
        await group.sharing.start()
        await until(lambda: bool(group.alarms("ftp-inactive")))
        await until(lambda: not _witnessing())
        assert failures == 2
        assert fake.data["user"]["u0002"] == {"name": "User 2"}, "the stale update not sent"

    with_group(scenario)


def test_a_restart_after_the_way_back_is_no_restore(with_group: RunGroup) -> None:
    """After ftp-inactive, Start Sharing and a sync bring sharing back; the elements' logs
    still hold what the store lost, which must not be found again at every start."""

    async def scenario(group: Group) -> None:
        fake = FakeElement()
        await group.add("cm1", fake)
        await group.share("cm1")
        store = group.hub.store
        element = store.elements.get("cm1")
        backup = store.meta.get(applied_key(element.id))
        await _delivered(group, fake)
        store.meta.set(applied_key(element.id), backup or "0")  # the backup's mark
        await group.sharing.stop()
        await group.sharing.start()
        await until(lambda: bool(group.alarms("ftp-inactive")))
        await group.share("cm1")
        assert not group.alarms("ftp-inactive")
        await group.sharing.stop()
        await group.sharing.start()
        await until(lambda: not _witnessing())
        assert not group.alarms("ftp-inactive")
        assert store.elements.get("cm1").sharing

    with_group(scenario)


def test_an_update_whose_answer_was_lost_is_not_taken_for_a_restore(
    with_group: RunGroup,
) -> None:
    """The element applied it, the hub got a transport error: the record went back to
    pending. A record the store still has is no evidence of a restore."""

    async def scenario(group: Group) -> None:
        fake, store, element = await _sharing_cm1(group)
        await _delivered(group, fake)
        fake.change("provsync", "update", "user", "u0002", {"name": "Sent"})
        _put_distribution(store, element.id, "u0002", '{"name": "Sent"}', "pending")
        await group.sharing.stop()
        await group.sharing.start()
        await until(lambda: not _witnessing())
        assert not group.alarms("ftp-inactive")
        assert store.elements.get("cm1").sharing
        await until(lambda: not store.distributions.open_counts())

    with_group(scenario)


def test_an_open_record_explains_only_an_update_with_its_data(with_group: RunGroup) -> None:
    """The element holds another update of the object a record in flight would set: that
    one came from a store ahead of this one."""

    async def scenario(group: Group) -> None:
        fake, store, element = await _sharing_cm1(group)
        await _delivered(group, fake)
        fake.change("provsync", "update", "user", "u0002", {"name": "Later"})
        _put_distribution(store, element.id, "u0002", '{"name": "Sent"}', "inflight")
        await group.sharing.stop()
        await group.sharing.start()
        await until(lambda: not _witnessing())
        (alarm,) = group.alarms("ftp-inactive")
        assert "user u0002" in alarm["text"]
        assert not store.elements.get("cm1").sharing

    with_group(scenario)


def test_a_sync_from_an_element_down_at_start_does_not_wait_for_the_backoff(
    with_group: RunGroup,
) -> None:
    """The witness tries an element that is down again after the backoff; when it calls
    in, it is evidently up: its log is read at once, and its sync does not wait."""

    async def scenario(group: Group) -> None:
        fake = FakeElement()
        await group.add("cm1", fake)
        await group.share("cm1")
        await _delivered(group, fake)
        witness = group.sharing._witness
        contact, failed = witness._contact, asyncio.Event()

        async def counted(element: Any, error: Any, failures: int) -> None:
            if error is not None:
                failed.set()
            await contact(element, error, failures)

        witness._contact = counted
        await group.sharing.stop()
        fake.down = True
        await group.sharing.start()
        await asyncio.wait_for(failed.wait(), 5.0)  # it waits 30 s for the next attempt
        fake.down = False
        job = await group.sharing.request_sync("cm1")
        await until(lambda: group._job_state(job) == "done", within=5.0)
        assert not witness.checking
        assert not group.alarms("ftp-inactive")

    with_group(scenario, retry_initial=30.0, retry_max=30.0)


# ------------------------------------------------------------------ item 10: minor
def test_distribution_errors_stay_minor_unless_escalation_is_opted_in(
    with_group: RunGroup,
) -> None:
    async def scenario(group: Group) -> None:
        fake = FakeElement()
        await group.add("cm1", fake)
        await group.share("cm1")
        fake.reject("station", "", "stations are locked")
        changes = [
            {"class": "station", "key": f"{80000 + i}", "op": "create", "data": {"n": i}}
            for i in range(101)
        ]
        await group.sharing.hub_changes(changes, None)
        await until(
            lambda: (
                "101 shared updates"
                in (group.active("distribution-errors", "cm1") or {}).get("text", "")
            )
        )
        alarm = group.active("distribution-errors", "cm1")
        assert alarm is not None
        assert alarm["severity"] == "minor"

    assert SharingSettings().errors_major_at == 0
    with_group(scenario)


def test_distribution_errors_escalate_when_the_site_opts_in(with_group: RunGroup) -> None:
    async def scenario(group: Group) -> None:
        fake = FakeElement()
        await group.add("cm1", fake)
        await group.share("cm1")
        fake.reject("station", "", "stations are locked")
        await group.sharing.hub_changes(
            [{"class": "station", "key": "80001", "op": "create", "data": {"n": 1}}], None
        )
        await until(lambda: group.active("distribution-errors", "cm1") is not None)
        first = group.active("distribution-errors", "cm1")
        assert first is not None
        assert first["severity"] == "minor"
        # The friction: one rejected update is one, not "1 shared updates".
        assert "1 shared update to cm1 was rejected" in first["text"]
        await group.sharing.hub_changes(
            [{"class": "station", "key": "80002", "op": "create", "data": {"n": 2}}], None
        )
        await until(
            lambda: (group.active("distribution-errors", "cm1") or {}).get("severity") == "major"
        )
        again = group.active("distribution-errors", "cm1")
        assert again is not None
        assert "2 shared updates to cm1 were rejected" in again["text"]

    with_group(scenario, errors_major_at=2)


# ------------------------------------------------------------------ item 11: activation
def test_activation_is_required_only_for_a_real_change(with_group: RunGroup) -> None:
    async def scenario(group: Group) -> None:
        await group.add("cm1", FakeElement())
        await group.add_messaging("vm1", ["cm1"])
        lifecycle = group.hub.engine.elements
        await lifecycle.update("cm1", url="http://cm1")  # the address it has
        await lifecycle.set_credentials("cm1", LOGIN)  # the credentials it has
        assert not group.alarms("element-updated-activation-required")
        group.hub.fakes["cm1-moved"] = group.hub.fakes["cm1"]
        await lifecycle.update("cm1", url="http://cm1-moved")
        (moved,) = group.alarms("element-updated-activation-required")
        assert (moved["resource"], moved["qualifier"]) == ("vm1", "cm1")
        assert "given the address http://cm1-moved" in moved["text"]
        await lifecycle.set_credentials("cm1", Credentials("admin2", "other"))
        (alarm,) = group.alarms("element-updated-activation-required")
        assert alarm["count"] == 2  # the same alarm, raised again for the new credentials

    with_group(scenario)


# ------------------------------------------------------------------ friction: uses
def test_a_removed_element_leaves_the_uses_of_the_others(with_group: RunGroup) -> None:
    async def scenario(group: Group) -> None:
        await group.add("cm1", FakeElement())
        await group.add("cm2", FakeElement())
        await group.add_messaging("vm1", ["cm1", "cm2"])
        await group.hub.engine.elements.remove("cm2")
        assert group.hub.store.elements.get("vm1").uses == ("cm1",)
        # Its list can be changed again (a stale name would be refused as unknown).
        await group.hub.engine.elements.update("vm1", uses=["cm1"])
        (alarm,) = group.alarms("element-updated-activation-required")
        assert alarm["qualifier"] == "cm2"
        assert "removed" in alarm["text"]

    with_group(scenario)


# ------------------------------------------------------------------ item 12: the group
def test_device_sync_and_status_cover_the_sharing_group_and_credit_the_host(
    with_group: RunGroup,
) -> None:
    async def scenario(group: Group) -> None:
        cm1, cm2 = FakeElement(), FakeElement()
        await group.add("cm1", cm1)
        await group.add("cm2", cm2)
        await group.add("cm3", FakeElement())  # registered, never shares
        await group.share("cm1", "cm2")
        # A phone added on cm1 is pushed to the hub and reaches cm2 too.
        phone = {"number": "79999", "type": "J179"}
        cm1.change("admin", "create", "station", "79999", phone)
        (result,) = await group.sharing.push(
            "cm1", [{"class": "station", "key": "79999", "op": "create", "data": phone}]
        )
        assert result["status"] == "accepted"
        await until(lambda: "79999" in cm2.data["station"])
        await group.sharing.hub_changes(
            [{"class": "directory-number", "key": "79999", "op": "create", "data": {}}], None
        )
        await group.sharing.device_sync()
        await until(lambda: bool(group.events("device-data-sync-completed")))
        listed = {d["number"]: d for d in await group.sharing.devices()}
        assert listed["79999"]["element"] == "cm1"  # cm2 holds a copy; cm1 hosts it
        (started,) = group.events("device-data-sync-started")
        assert started["details"]["elements"] == ["cm1", "cm2"]
        (done,) = group.events("device-data-sync-completed")
        assert set(done["details"]) == {"cm1", "cm2"}
        assert "2 elements" in started["text"]
        status = await group.sharing.status()
        assert [e["name"] for e in status["elements"]] == ["cm1", "cm2"]

    with_group(scenario)


# ------------------------------------------------------------------ friction: plurals
def test_one_unresolved_conflict_is_said_so(with_group: RunGroup) -> None:
    async def scenario(group: Group) -> None:
        fake = FakeElement()
        await group.add("cm1", fake)
        await group.share("cm1")
        fake.reject("user", "u0001", "locked on the element")
        await group.sharing.hub_changes(
            [{"class": "user", "key": "u0001", "op": "update", "data": {"name": "Hub"}}], None
        )
        await until(lambda: group.active("distribution-errors", "cm1") is not None)
        fake.change("admin", "update", "user", "u0001", {"name": "Element"})
        job = await group.sharing.request_sync("cm1")
        await until(lambda: group._job_state(job) == "done")
        alarm = group.active("sync-reconcile-required", "cm1")
        assert alarm is not None
        assert "found 1 unresolved conflict (" in alarm["text"]

    with_group(scenario)


def test_cli_counts_agree_with_their_nouns(agent_factory: Any, tmp_path: Path) -> None:
    hub = agent_factory(FAST).start()
    group = SharingGroup(hub, tmp_path)
    try:
        group.add("cs1")
        assert group.start_sharing("cs1").status_code == 200
        group.sync("cs1")
        added = hub.cli("objects", "add", "user", "newhire", "name=New Hire", "number=29001")
        assert "create user newhire: 1 distribution queued" in added.stdout
        cs1 = group.elements["cs1"]
        user = cs1.first_key("user")
        data = group.hub_data()[("user", user)]
        cs1.reject("user", user, "locked on the element")
        hub.cli("objects", "set", "user", user, "name=Hub Name")
        wait_for("rejected", lambda: group.alarms("distribution-errors", "cs1"))
        group.local_change("cs1", "update", "user", user, {**data, "name": "Elem"}, share=False)
        cs1.admin("DELETE", "/admin/reject")
        group.sync("cs1")
        resolved = hub.cli("sharing", "resolve", "--all", "--take", "hub")
        assert "resolved 1 conflict: took hub" in resolved.stdout
    finally:
        group.stop()


def test_a_sync_from_an_element_is_done_only_once_it_no_longer_refuses_pushes(
    with_group: RunGroup,
) -> None:
    """An element that waited for its sync's "done" and pushes at once is not refused as
    still syncing."""

    async def scenario(group: Group) -> None:
        fake = FakeElement()
        await group.add("cm1", fake)
        await group.sharing.start_sharing("cm1", "10.2.1")
        dispatcher = group.sharing._dispatcher
        recount, seen = dispatcher.recount, []
        job = 0

        async def watched() -> None:
            # The last step of the sync before its slot is released.
            found = group.hub.store.jobs.get(job)
            seen.append(found.state if found else "")
            await recount()

        dispatcher.recount = watched  # type: ignore[method-assign]
        job = await group.sharing.request_sync("cm1")
        await until(lambda: group._job_state(job) in ("done", "failed"))
        assert group._job_state(job) == "done"
        assert seen, "the sync went through its last step"
        assert "done" not in seen, seen
        fake.change("tech", "create", "station", "79998", {"n": 1})
        (result,) = await group.sharing.push(
            "cm1", [{"class": "station", "key": "79998", "op": "create", "data": {"n": 1}}]
        )
        assert result["status"] == "accepted", result

    with_group(scenario)


def test_a_disable_whose_alarm_met_a_store_outage_raises_it_on_the_retry(
    with_group: RunGroup,
) -> None:
    """Sharing off with no ftp-inactive saying why must not be left behind."""

    async def scenario(group: Group) -> None:
        await group.add("cm1", FakeElement())
        await group.share("cm1")
        identity = group.sharing._identity
        sink = identity._alarms
        real_raise, calls = sink.raise_alarm, 0

        async def down_once(type_id: str, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            if type_id == "ftp-inactive":
                calls += 1
                if calls == 1:
                    raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O"))
            return await real_raise(type_id, *args, **kwargs)

        sink.raise_alarm = down_once  # type: ignore[method-assign]
        with pytest.raises(OperationalError):
            await identity.disable(["found restored"])
        assert not group.hub.store.elements.get("cm1").sharing, "the disable committed"
        assert not group.alarms("ftp-inactive")
        await identity.disable(["found restored"])  # the witness's retry
        (alarm,) = group.alarms("ftp-inactive")
        assert "found restored" in alarm["text"]
        assert "cm1" in alarm["text"]
        del sink.raise_alarm  # type: ignore[method-assign]

    with_group(scenario)
