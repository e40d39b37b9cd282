"""Reconcile's plans and bulk decisions in process, on SQLite and PostgreSQL: a plan's
size and locks, a conflict closed while a decision is on its way, the ids looked up at
once, a refusal in the decision itself."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg.errors import DeadlockDetected
from sqlalchemy import event, select, update
from sqlalchemy.exc import OperationalError

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.api.statuses import status_of
from agent.clock import now
from agent.errors import InvalidRequest, SharingError
from agent.sharing.gate import Gate
from agent.sharing.parts import HubParts
from agent.sharing.reconcile import PLAN_MAX, Reconcile
from agent.sharing.sink import HUB
from agent.store.access import StoreAccess
from agent.store.conflicts import IN_CHUNK, Found
from agent.store.database import Store
from agent.store.elements import Credentials, Element
from agent.store.encryption import KeyRing, StoreKey
from agent.store.models import CONFLICTS, DISTRIBUTIONS, ELEMENTS
from agent.store.shared_data import Change


class Dispatcher:
    """What a decision asks of the dispatcher: a recount and a wake-up."""

    async def recount(self) -> None:
        pass

    def wake(self, element_id: int | None = None) -> None:
        pass


@dataclass
class Hub:
    store: Store
    access: StoreAccess
    reconcile: Reconcile
    elements: dict[str, Element]

    def conflicts(self, element: str, *keys: str) -> list[int]:
        """An unresolved conflict on each user of ``keys`` (the hub's value set too)."""
        target = self.elements[element]
        at = now()
        found = [
            Found("user", k, k, "unresolved", {"name": "Hub"}, {"name": "Elem"}, None, "both")
            for k in keys
        ]
        with self.access.begin() as conn:
            self.access.shared.write(
                conn, [Change("user", k, "create", {"name": "Hub"}) for k in keys], HUB, at
            )
            self.access.conflicts.add(conn, target.id, target.name, found, at)
            chosen = select(CONFLICTS.c.id).where(CONFLICTS.c.key.in_(keys))
            return sorted(conn.execute(chosen).scalars())

    def state(self, conflict_id: int) -> tuple[str, str | None]:
        row = self.access.conflicts.get(conflict_id)
        assert row is not None
        return row.state, row.resolution


@pytest.fixture
def hub(store: Store) -> Iterator[Hub]:
    access = StoreAccess(store.engine)
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    ring = KeyRing([StoreKey.generate()], Path("test.key"))
    elements = {}
    for name in ("cs1", "cs2"):
        added = access.elements.add(
            name,
            "call-server",
            "http://127.0.0.1:9",
            "http",
            0,
            Credentials("admin", "pw"),
            ring=ring,
        )
        with store.engine.begin() as conn:
            conn.execute(update(ELEMENTS).where(ELEMENTS.c.id == added.id).values(sharing=True))
        elements[name] = added

    async def refresh(element_id: int, name: str) -> None:
        pass

    parts = HubParts(access, manager, Gate(manager), Dispatcher(), now)  # type: ignore[arg-type]
    yield Hub(store, access, Reconcile(parts, refresh), elements)
    manager.stop()


def _users(count: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{n:04d}" for n in range(count)]


# ------------------------------------------------------------------ 1. a plan's size
def test_a_plan_makes_at_most_plan_max_decisions(hub: Hub) -> None:
    ids = hub.conflicts("cs1", *_users(PLAN_MAX + 1))
    said = "plan at most 500 at a time: give ids or an element"
    # Every open one, those of an element, more ids: refused before any decision.
    for asked in (
        hub.reconcile.plan(None, "skip"),
        hub.reconcile.plan(None, "skip", "cs1"),
        hub.reconcile.plan(None, "skip", ids=ids),
    ):
        with pytest.raises(InvalidRequest, match=said) as refused:
            asyncio.run(asked)
        assert status_of(refused.value) == 400
    planned = asyncio.run(hub.reconcile.plan(None, "skip", ids=ids[:PLAN_MAX]))
    assert [p.conflict.id for p in planned] == ids[:PLAN_MAX]
    assert len(asyncio.run(hub.reconcile.plan(ids[-1], "hub"))) == 1
    assert all(hub.state(i) == ("open", None) for i in ids), "a plan changes nothing"


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_plan_waiting_for_a_lock_says_the_hub_is_busy(hub: Hub) -> None:
    (conflict,) = hub.conflicts("cs1", "u1")
    holder = hub.store.engine.connect()
    holder.begin()
    # Another transaction holds the conflict's row (a sync withdrawing it, say).
    holder.execute(select(CONFLICTS).where(CONFLICTS.c.id == conflict).with_for_update())
    answer: dict[str, object] = {}

    def plan() -> None:
        try:
            answer["plan"] = asyncio.run(hub.reconcile.plan(conflict, "skip"))
        except Exception as exc:
            answer["error"] = exc

    worker = threading.Thread(target=plan)
    worker.start()
    worker.join(10)
    waited = worker.is_alive()
    holder.rollback()  # the plan (if it still waits) goes on
    holder.close()
    worker.join()
    assert not waited, "the plan waited for the lock"
    busy = answer.get("error")
    assert isinstance(busy, SharingError), answer
    assert str(busy) == "the hub is busy; try the preview again"
    assert status_of(busy) == 409
    assert hub.state(conflict) == ("open", None)


def test_a_deadlock_in_a_plan_says_the_hub_is_busy(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    (conflict,) = hub.conflicts("cs1", "u1")

    def deadlocked(rows: Any, take: str) -> Any:
        raise OperationalError("UPDATE conflicts ...", {}, DeadlockDetected("deadlock detected"))

    monkeypatch.setattr(hub.reconcile, "_planned", deadlocked)
    with pytest.raises(SharingError, match="the hub is busy; try the preview again"):
        asyncio.run(hub.reconcile.plan(conflict, "skip"))


# ------------------------------------------------------------------ 2. closed meanwhile
def _closing_after(hub: Hub, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The conflicts store's ``name`` read, then cs1's open conflicts closed as its
    removal closes them (Membership.drop_records): between the read and the decisions."""
    real: Callable[..., Any] = getattr(hub.access.conflicts, name)

    def read_then_removed(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        with hub.access.begin() as conn:
            hub.access.drop_sharing_records(conn, hub.elements["cs1"].id)
        return found

    monkeypatch.setattr(hub.access.conflicts, name, read_then_removed)


@pytest.mark.parametrize("chosen_by", ["listed", "open_of", "get"])
def test_a_decision_leaves_a_conflict_closed_since_it_was_read(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, chosen_by: str
) -> None:
    _closing_after(hub, monkeypatch, chosen_by)
    for round_, users in enumerate((("u1", "u2"), ("u3", "u4"))):
        ids = hub.conflicts("cs1", *users)
        conflict_id = ids[0] if chosen_by == "get" else None
        chosen = ids if chosen_by == "open_of" else None
        if round_ == 0:
            assert asyncio.run(hub.reconcile.plan(conflict_id, "element", ids=chosen)) == []
        else:
            done = asyncio.run(hub.reconcile.resolve(conflict_id, "element", "op", ids=chosen))
            assert done["resolved"] == []
        assert [hub.state(i) for i in ids] == [("resolved", "removed")] * 2
        # Nothing of the decision was written: the hub keeps its value, cs2 gets nothing.
        assert hub.access.shared.get("user", users[0]) == {"name": "Hub"}
        with hub.store.engine.connect() as conn:
            assert conn.execute(select(DISTRIBUTIONS)).first() is None


def test_closing_a_conflict_closes_only_an_open_one(hub: Hub) -> None:
    (conflict,) = hub.conflicts("cs1", "u1")
    with hub.access.begin() as conn:
        assert hub.access.conflicts.close(conn, conflict, "hub", "op")
    with hub.access.begin() as conn:
        assert not hub.access.conflicts.close(conn, conflict, "skip", "other")
    assert hub.state(conflict) == ("resolved", "hub")


# SQLite: on PostgreSQL the decision's read locks the row, and the other close waits.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_conflict_closed_between_its_decision_and_its_close_is_rolled_back(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = hub.conflicts("cs1", "u1", "u2")
    real = hub.reconcile._decide

    def decided_then_removed(conn: Any, row: Any, take: str) -> Any:
        decision = real(conn, row, take)
        if row.id == first:  # SQLite: a read locks nothing, the other writer goes first
            with hub.access.begin() as other:
                hub.access.conflicts.close(other, first, "removed", None)
        return decision

    monkeypatch.setattr(hub.reconcile, "_decide", decided_then_removed)
    done = asyncio.run(hub.reconcile.resolve(None, "element", "op"))
    assert done["resolved"] == [second]
    assert hub.state(first) == ("resolved", "removed")
    assert hub.state(second) == ("resolved", "element")
    with hub.store.engine.connect() as conn:
        sent = conn.execute(select(DISTRIBUTIONS.c.key)).scalars().all()
    assert sent == ["u2"], "the first decision's writes rolled back"


# ------------------------------------------------------------------ 3. ids at once
def test_ids_are_looked_up_in_one_query_per_thousand(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = hub.conflicts("cs1", *_users(IN_CHUNK + 5))
    with hub.access.begin() as conn:
        hub.access.conflicts.close(conn, ids[3], "skip", None)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM conflicts" in statement:
            statements.append(statement)

    def no_get(conflict_id: int) -> None:
        raise AssertionError("one conflicts.get per id")

    monkeypatch.setattr(hub.access.conflicts, "get", no_get)
    event.listen(hub.store.engine, "before_cursor_execute", seen)
    try:
        found = hub.access.conflicts.open_of([*reversed(ids), ids[0], 10**9])
        assert len(statements) == 2, "one statement per chunk"
        assert [c.id for c in found] == [i for i in ids if i != ids[3]], "open, by id"
        statements.clear()
        planned = asyncio.run(hub.reconcile.plan(None, "skip", ids=ids[:PLAN_MAX]))
        # One to choose them, then each decision's own read in the plan's transaction.
        assert len(statements) == 1 + len(planned)
        statements.clear()
        done = asyncio.run(hub.reconcile.resolve(None, "skip", "op", ids=ids))
    finally:
        event.remove(hub.store.engine, "before_cursor_execute", seen)
    assert done["resolved"] == [i for i in ids if i != ids[3]]
    chosen = [s for s in statements if " IN " in s]
    assert len(chosen) == 2, chosen


# ------------------------------------------------------------------ 4. refused deciding
def test_a_refusal_while_deciding_is_in_the_plan(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = hub.conflicts("cs1", "u1", "u2")

    def refused(conn: Any, exclude: int | None = None) -> list[tuple[int, str]]:
        raise SharingError("the group changed")

    monkeypatch.setattr(hub.access.elements, "sharing_targets", refused)
    (planned,) = asyncio.run(hub.reconcile.plan(None, "element"))
    assert planned.conflict.id == first
    assert planned.refused == "the group changed"
    assert planned.changes == []
    assert planned.sent_to == []
    with pytest.raises(SharingError, match="the group changed"):
        asyncio.run(hub.reconcile.resolve(None, "element", "op"))
    assert hub.state(first) == hub.state(second) == ("open", None)
