"""Reconcile: the conflicts syncs found, and the operator's decisions on them.

Taking the hub's value sends it to the element; taking the element's writes it to the
hub and shares it with the others; skipping closes the conflict. When an element has no
unresolved conflict left, its sync-reconcile-required clears (and ftp-inactive, once no
element has any).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent.errors import InvalidRequest
from agent.sharing.group import RECONCILE_REQUIRED
from agent.sharing.merge import element_op
from agent.sharing.parts import HubComponent, HubParts
from agent.sharing.sink import HUB, clear_if_active
from agent.store.conflicts import Conflict
from agent.store.rows import Data
from agent.store.shared_data import Change


@dataclass(frozen=True, slots=True)
class ConflictReport:
    """Reconcile at a glance: whether it runs, counts per category, the conflicts."""

    running: bool
    summary: dict[str, int]
    conflicts: list[Conflict]


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
        self, conflict_id: int | None, take: str, by: str | None, element: str | None = None
    ) -> dict[str, Any]:
        """Resolve one conflict, or every open one (of ``element``), taking hub, element
        or skip; what was resolved before a refusal stays resolved."""
        if take not in ("hub", "element", "skip"):
            raise InvalidRequest("take must be hub, element or skip")
        async with self._gate.hub_lock:
            rows = await self._chosen(conflict_id, element)
            done: list[Conflict] = []
            try:
                for row in rows:
                    await asyncio.to_thread(self._resolve_one, row, take, by)
                    done.append(row)
            finally:
                if done:  # what was resolved before a refusal counts
                    await self._after_resolving(done)
        return {"resolved": [r.id for r in rows], "take": take}

    async def _chosen(self, conflict_id: int | None, element: str | None) -> list[Conflict]:
        if conflict_id is not None:
            row = await asyncio.to_thread(self._store.conflicts.get, conflict_id)
            if row is None:
                raise InvalidRequest(f"no conflict with id {conflict_id}")
            if row.state != "open":
                raise InvalidRequest(
                    f"conflict {conflict_id} is already resolved ({row.resolution})"
                )
            return [row]
        rows = [
            r
            for r in await asyncio.to_thread(self._store.conflicts.listed)
            if element is None or r.element == element
        ]
        if not rows:
            raise InvalidRequest("no open conflict to resolve")
        return rows

    async def _after_resolving(self, rows: list[Conflict]) -> None:
        await self._after_reconcile({r.element for r in rows})
        for element_id, name in {(r.element_id, r.element) for r in rows}:
            await self._refresh_errors(element_id, name)  # a decision may drop failed updates
        await self._dispatcher.recount()
        self._dispatcher.wake()

    def _resolve_one(self, row: Conflict, take: str, by: str | None) -> None:
        at = self._clock()
        store, element_value = self._store, row.element_data
        with store.begin() as conn:
            hub_value = store.shared.current(conn, row.cls, row.hub_key)
            mine = [(row.element_id, row.element)]
            if take == "hub":
                for key in {row.key, row.hub_key}:
                    store.distributions.cancel_open(conn, row.element_id, row.cls, key)
                changes = _overwrite(row.cls, row.hub_key, row.key, element_value, hub_value)
                store.distributions.add(conn, mine, changes, HUB, at)
            elif take == "element":
                changes = _overwrite(row.cls, row.key, row.hub_key, hub_value, element_value)
                for change in changes:
                    # Refuses: nothing of the decision is applied.
                    store.shared.check_unique(conn, change)
                    store.shared.write(conn, [change], row.element, at)
                store.bases.set(conn, row.element_id, [(c.cls, c.key, c.data) for c in changes])
                for change in changes:
                    store.distributions.cancel_open(conn, row.element_id, change.cls, change.key)
                others = store.elements.sharing_targets(conn, exclude=row.element_id)
                store.distributions.add(conn, others, changes, row.element, at)
            store.conflicts.close(conn, row.id, take, by)

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
