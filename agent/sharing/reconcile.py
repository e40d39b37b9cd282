"""Reconcile: the conflicts syncs found, and the operator's decisions on them.

Taking the hub's value sends it to the element; taking the element's writes it to the
hub and shares it with the others; skipping closes the conflict. When an element has no
unresolved conflict left, its sync-reconcile-required clears (and ftp-inactive, once no
element has any).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from psycopg.errors import DeadlockDetected, LockNotAvailable
from sqlalchemy import Connection, and_, select, text
from sqlalchemy.exc import DBAPIError

from agent.errors import InvalidRequest, ProvsyncError, SharingError
from agent.sharing.group import RECONCILE_REQUIRED
from agent.sharing.merge import element_op
from agent.sharing.parts import HubComponent, HubParts
from agent.sharing.sink import HUB, clear_if_active
from agent.store.conflicts import Conflict
from agent.store.distributions import Distribution, distribution_of
from agent.store.models import DISTRIBUTIONS
from agent.store.rows import Data
from agent.store.shared_data import Change

CANCELLED_STATES = ("pending", "error")
"""The distributions a decision drops (the states DistributionsRepo.cancel_open
deletes): the ones not sent yet, and the failed ones; one in flight finishes."""

PLAN_MAX = 500
"""The most decisions one plan makes: they run in one transaction, rolled back, that holds
the store's write lock (SQLite) or the rows' locks (PostgreSQL) and the hub lock until it
ends (the console's wizard plans at most 100)."""
PLAN_LOCK_TIMEOUT = "2s"
"""How long a plan's statement waits for a row lock on PostgreSQL before it gives up
(the plan is a preview: it must not hold the hub while it waits)."""
HUB_BUSY = "the hub is busy; try the preview again"


@dataclass(frozen=True, slots=True)
class ConflictReport:
    """Reconcile at a glance: whether it runs, counts per category, the conflicts."""

    running: bool
    summary: dict[str, int]
    conflicts: list[Conflict]


@dataclass(frozen=True, slots=True)
class Planned:
    """What resolving one conflict does (Reconcile.plan), computed as the resolve does it.

    ``changes`` go to ``written_to``: "element" (sent to it), "hub" (written to the hub's
    data, then sent to the other sharing elements), "" (a skip writes nothing), where
    they replace ``replaced``; ``targets`` (id, name) receive them. ``hub_value`` is the
    hub's value now, the one taking the hub's value sends (not the one the sync saw).
    ``cancelled``: the element's
    distributions the decision drops (of ``cancel_keys``). ``refused``: why the resolve
    stops at this conflict ("" when it does not; the ones after it are not planned, as
    the resolve would not reach them)."""

    conflict: Conflict
    take: str
    hub_value: Data | None
    changes: list[Change]
    written_to: str
    replaced: Data | None
    targets: list[tuple[int, str]]
    cancel_keys: list[str]
    cancelled: list[Distribution]
    refused: str = ""

    @property
    def sent_to(self) -> list[str]:
        return [name for _, name in self.targets]


class Reconcile(HubComponent):
    """Lists and resolves conflicts.

    Args:
        parts: the conflicts and the data a decision writes, the alarms of reconcile
            (sync-reconcile-required, ftp-inactive), the gate, the dispatcher.
        refresh_errors: (element id, name) refreshes the element's distribution-errors
            alarm (a decision may drop failed updates).
    """

    def __init__(
        self, parts: HubParts, refresh_errors: Callable[[int, str], Awaitable[None]]
    ) -> None:
        super().__init__(parts)
        self._refresh_errors = refresh_errors

    async def conflicts(self, open_only: bool = True) -> ConflictReport:
        rows = await asyncio.to_thread(self._store.conflicts.listed, open_only=open_only)
        counts = await asyncio.to_thread(self._store.conflicts.counts)
        return ConflictReport(self._gate.reconcile_running(), counts, rows)

    async def resolve(
        self,
        conflict_id: int | None,
        take: str,
        by: str | None,
        element: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """Resolve one conflict, or every open one (of ``element``; of those only ``ids``
        when given: what a confirmation showed), taking hub, element or skip. What was
        resolved before a refusal stays resolved (each decision commits on its own), and
        the refusal's message says how many were."""
        _check_take(take)
        async with self._gate.hub_lock:
            rows = await self._chosen(conflict_id, element, ids)
            done: list[Conflict] = []
            try:
                for row in rows:
                    # False: no longer open (its element removed meanwhile): left alone.
                    if await asyncio.to_thread(self._resolve_one, row, take, by):
                        done.append(row)
            except ProvsyncError as exc:
                if done:
                    # The same error (the same status), but no caller may read "nothing
                    # done": its message says how many were, and a note counts them.
                    exc.args = (f"{len(done)} resolved, then refused (conflict {row.id}): {exc}",)
                    exc.add_note(f"{_RESOLVED_NOTE}{len(done)}")
                raise
            finally:
                if done:  # what was resolved before a refusal counts
                    await self._after_resolving(done)
        return {"resolved": [r.id for r in done], "take": take}

    async def plan(
        self,
        conflict_id: int | None,
        take: str,
        element: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Planned]:
        """What ``resolve`` with the same arguments would do now, with nothing changed:
        the same code makes each decision (the hub's current value, the same overwrite,
        targets and cancelled distributions; each decision seeing the ones before it),
        in one transaction rolled back. It stops at a refusal, as the resolve does.

        At most PLAN_MAX decisions (refused above: give ids or an element); a lock it
        cannot get soon (PostgreSQL) refuses it as busy (SharingError)."""
        _check_take(take)
        if ids is not None:
            _check_plan_size(len(set(ids)))
        async with self._gate.hub_lock:  # as the resolve sees it: no decision halfway
            rows = await self._chosen(conflict_id, element, ids)
            _check_plan_size(len(rows))
            try:
                return await asyncio.to_thread(self._planned, rows, take)
            except DBAPIError as exc:
                if not _is_busy(exc):
                    raise
                raise SharingError(HUB_BUSY) from exc

    async def _chosen(
        self, conflict_id: int | None, element: str | None, ids: Sequence[int] | None
    ) -> list[Conflict]:
        if conflict_id is not None:
            row = await asyncio.to_thread(self._store.conflicts.get, conflict_id)
            if row is None:
                raise InvalidRequest(f"no conflict with id {conflict_id}")
            if row.state != "open":
                raise InvalidRequest(
                    f"conflict {conflict_id} is already resolved ({row.resolution})"
                )
            return [row]
        if ids is not None:
            # Exactly those (still open): one found meanwhile was not shown, so not taken.
            rows = await asyncio.to_thread(self._store.conflicts.open_of, ids)
        else:
            rows = await asyncio.to_thread(self._store.conflicts.listed)
        rows = [r for r in rows if element is None or r.element == element]
        if not rows:
            raise InvalidRequest("no open conflict to resolve")
        return rows

    async def _after_resolving(self, rows: list[Conflict]) -> None:
        await self._after_reconcile({r.element for r in rows})
        for element_id, name in {(r.element_id, r.element) for r in rows}:
            await self._refresh_errors(element_id, name)  # a decision may drop failed updates
        await self._dispatcher.recount()
        self._dispatcher.wake()

    def _resolve_one(self, row: Conflict, take: str, by: str | None) -> bool:
        """One decision in its own transaction; False: the conflict is no longer open
        (nothing done)."""
        try:
            with self._store.begin() as conn:
                decision = self._decide(conn, row, take)
                if decision is None:
                    return False
                self._apply(conn, decision, by)
        except _Withdrawn:
            return False  # closed between its read and its close: rolled back
        return True

    def _planned(self, rows: list[Conflict], take: str) -> list[Planned]:
        planned: list[Planned] = []
        with self._store.engine.connect() as conn:
            transaction = conn.begin()
            try:
                if conn.dialect.name == "postgresql":
                    conn.execute(text(f"SET LOCAL lock_timeout = '{PLAN_LOCK_TIMEOUT}'"))
                for row in rows:
                    decision: Planned | None = None
                    try:
                        decision = self._decide(conn, row, take)
                        if decision is None:
                            continue  # no longer open: the resolve leaves it too
                        # Applied too: the next decision reads what this one wrote, as
                        # in the resolve, and a refusal shows where it would come.
                        self._apply(conn, decision, None)
                    except _Withdrawn:
                        continue
                    except ProvsyncError as exc:
                        # Refused in the decision or in its writes: the resolve stops here.
                        if decision is None:
                            decision = _undecided(row, take)
                        planned.append(replace(decision, refused=str(exc)))
                        break
                    planned.append(decision)
            finally:
                transaction.rollback()  # a plan changes nothing
        return planned

    def _decide(self, conn: Connection, row: Conflict, take: str) -> Planned | None:
        """The decision on ``row`` read in ``conn`` (the resolve's transaction or the
        plan's): the one place its rules are; _apply writes it. None: the conflict is no
        longer open (a new sync or the element's removal closed it since it was read)."""
        store = self._store
        current = store.conflicts.current(conn, row.id)
        if current is None or current.state != "open":
            return None
        row = current
        hub_value = store.shared.current(conn, row.cls, row.hub_key)
        changes: list[Change] = []
        targets: list[tuple[int, str]] = []
        cancel_keys: list[str] = []
        written_to = ""
        replaced: Data | None = None
        if take == "hub":
            changes = _overwrite(row.cls, row.hub_key, row.key, row.element_data, hub_value)
            targets = [(row.element_id, row.element)]
            # What waits for the element under either key is replaced by this.
            cancel_keys = sorted({row.key, row.hub_key})
            written_to, replaced = "element", row.element_data
        elif take == "element":
            changes = _overwrite(row.cls, row.key, row.hub_key, hub_value, row.element_data)
            targets = store.elements.sharing_targets(conn, exclude=row.element_id)
            cancel_keys = [c.key for c in changes]
            written_to, replaced = "hub", hub_value
        cancelled = _open_distributions(conn, row.element_id, row.cls, cancel_keys)
        return Planned(
            row, take, hub_value, changes, written_to, replaced, targets, cancel_keys, cancelled
        )

    def _apply(self, conn: Connection, decision: Planned, by: str | None) -> None:
        store, row, changes = self._store, decision.conflict, decision.changes
        at = self._clock()
        if decision.written_to == "hub":
            for change in changes:
                # Refuses: nothing of the decision is applied.
                store.shared.check_unique(conn, change)
                store.shared.write(conn, [change], row.element, at)
            store.bases.set(conn, row.element_id, [(c.cls, c.key, c.data) for c in changes])
        for key in decision.cancel_keys:
            store.distributions.cancel_open(conn, row.element_id, row.cls, key)
        if changes:
            origin = HUB if decision.written_to == "element" else row.element
            store.distributions.add(conn, decision.targets, changes, origin, at)
        if not store.conflicts.close(conn, row.id, decision.take, by):
            raise _Withdrawn  # closed since _decide read it (SQLite reads lock nothing)

    async def _after_reconcile(self, elements: set[str]) -> None:
        unresolved = await asyncio.to_thread(self._store.conflicts.unresolved_elements)
        for name in sorted(elements - unresolved):
            if self._alarms.is_active(RECONCILE_REQUIRED, name):
                await clear_if_active(
                    self._alarms, RECONCILE_REQUIRED, name, note="reconcile completed"
                )
                counts = await asyncio.to_thread(self._store.conflicts.counts)
                await self._alarms.emit_event(
                    "reconcile-completed",
                    name,
                    details=counts,
                    text=f"reconcile of the conflicts found in the sync from {name} completed",
                )
        if not unresolved and any(
            e.sharing for e in await asyncio.to_thread(self._store.elements.all)
        ):
            await clear_if_active(self._alarms, "ftp-inactive", HUB, note="reconcile completed")


def _overwrite(
    cls: str, key: str, other_key: str, before: Data | None, after: Data | None
) -> list[Change]:
    """The changes that give one side ``after`` under ``key`` where it held ``before``; for a
    pair (two keys, one record) its record under ``other_key`` goes first."""
    if key == other_key:
        return [Change(cls, key, element_op(before, after), after)]
    return [
        Change(cls, other_key, "delete", None),
        Change(cls, key, element_op(None, after), after),
    ]


class _Withdrawn(Exception):
    """A decision's conflict was closed by another transaction after its read: the
    decision's transaction rolls back, and the conflict is left as no longer open (a
    signal that never leaves this module, not a ProvsyncError)."""


def _undecided(row: Conflict, take: str) -> Planned:
    """The plan of a decision refused before it was made: nothing computed (the values
    shown are the ones the sync saw)."""
    return Planned(row, take, row.hub_data, [], "", None, [], [], [])


def _check_plan_size(count: int) -> None:
    if count > PLAN_MAX:
        raise InvalidRequest(
            f"plan at most {PLAN_MAX} at a time: give ids or an element ({count} asked for)"
        )


def _is_busy(exc: DBAPIError) -> bool:
    """A lock the plan could not get in time, or a deadlock it lost (PostgreSQL), or
    SQLite's write lock held past its busy timeout."""
    if isinstance(exc.orig, LockNotAvailable | DeadlockDetected):
        return True
    return isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig)


_RESOLVED_NOTE = "resolved before the refusal: "


def resolved_before(exc: BaseException) -> int:
    """How many decisions a bulk resolve made before ``exc`` refused the next one (they
    stay made); 0 when it refused before any."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(_RESOLVED_NOTE):
            return int(note.removeprefix(_RESOLVED_NOTE))
    return 0


def _check_take(take: str) -> None:
    if take not in ("hub", "element", "skip"):
        raise InvalidRequest("take must be hub, element or skip")


def _open_distributions(
    conn: Connection, element_id: int, cls: str, keys: Sequence[str]
) -> list[Distribution]:
    """The distributions to the element that cancel_open drops for ``keys``, read before
    it does (the store has no query for them that runs in a given transaction)."""
    if not keys:
        return []
    rows = conn.execute(
        select(DISTRIBUTIONS)
        .where(
            and_(
                DISTRIBUTIONS.c.element_id == element_id,
                DISTRIBUTIONS.c.cls == cls,
                DISTRIBUTIONS.c.key.in_(keys),
                DISTRIBUTIONS.c.state.in_(CANCELLED_STATES),
            )
        )
        .order_by(DISTRIBUTIONS.c.id)
    )
    return [distribution_of(r) for r in rows]
