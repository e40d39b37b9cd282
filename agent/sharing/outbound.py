"""Flow-through provisioning out of the hub: hub changes distributed to every sharing
element, the operator's retry and delete of failed distributions, the purge of applied
ones.

A hub change and its distribution records commit in one transaction; it is refused
while sharing is blocked and when an element's undistributed records would pass
[sharing] distribution_cap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from loguru import logger

from agent.config import SharingSettings
from agent.errors import InvalidRequest, ProvsyncError, SharingError
from agent.sharing.changes import checked_change
from agent.sharing.parts import HubComponent, HubParts
from agent.sharing.sink import HUB
from agent.sharing.wording import counted
from agent.store.distributions import Distribution
from agent.store.outage import ThrottledLog, is_store_outage
from agent.store.shared_data import Change


class Outbound(HubComponent):
    """Hub changes and the operator's handling of distributions.

    Args:
        parts: the hub's data and the distributions, the retried and deleted events, the
            gate (refuses hub changes while sharing is blocked), the dispatcher's counts.
        refresh_errors: (element id, name) refreshes the distribution-errors alarm.
        settings: [sharing] classes, distribution_cap, keep_done.
    """

    def __init__(
        self,
        parts: HubParts,
        refresh_errors: Callable[[int, str], Awaitable[None]],
        settings: SharingSettings,
    ) -> None:
        super().__init__(parts)
        self._refresh_errors = refresh_errors
        self._settings = settings
        self._outages = ThrottledLog()

    async def hub_changes(self, changes: list[dict[str, Any]], by: str | None) -> dict[str, Any]:
        """Flow-through provisioning: change the hub's shared data and distribute it."""
        checked = [
            checked_change(
                self._settings.classes,
                str(c.get("class", "")),
                str(c.get("key", "")),
                str(c.get("op", "")),
                c.get("data"),
            )
            for c in changes
        ]
        cap = self._settings.distribution_cap
        async with self._gate.hub_lock:
            self._gate.check_hub_change()  # under the lock: syncs raise their alarms holding it
            targets = await asyncio.to_thread(self._store.elements.targets)
            for element_id, name in targets:
                waiting = self._dispatcher.waiting(element_id)
                if waiting + len(checked) > cap:
                    raise SharingError(
                        f"{name} has {counted(waiting, 'update')} not yet distributed "
                        "(pending or failed); "
                        f"the cap is {cap}: retry or delete its "
                        f"failed distributions (provsync distribution list --element {name})"
                    )
            written = await asyncio.to_thread(self._write_hub, checked, targets)
            self._dispatcher.queued([element_id for element_id, _ in targets], len(written))
        self._dispatcher.wake()
        return {
            "changes": [
                {"class": c.cls, "key": c.key, "op": c.op, "data": c.data} for c in written
            ],
            "distributions": len(written) * len(targets),
        }

    def _write_hub(self, checked: list[Change], targets: list[tuple[int, str]]) -> list[Change]:
        at = self._clock()
        written: list[Change] = []
        store = self._store
        with store.begin() as conn:
            for change in checked:
                current = store.shared.current(conn, change.cls, change.key)
                if change.op == "create" and current is not None:
                    raise InvalidRequest(f"{change.cls} {change.key} exists")
                if change.op != "create" and current is None:
                    raise InvalidRequest(f"no {change.cls} {change.key} on the hub")
                data = change.data
                if change.op == "update" and data is not None:
                    data = {**current, **data} if isinstance(current, dict) else data
                final = Change(change.cls, change.key, change.op, data)
                store.shared.check_unique(conn, final)
                store.shared.write(conn, [final], HUB, at)
                written.append(final)
            store.distributions.add(conn, targets, written, HUB, at)
        return written

    async def retry(
        self, ids: Sequence[int] | None, element: str | None, by: str | None
    ) -> dict[str, int]:
        element_id = await self._element_id(element)
        found = await asyncio.to_thread(self._store.distribution_admin.retry, ids, element_id)
        return await self._operated("distribution-retried", "retried", found, by)

    async def delete(
        self, ids: Sequence[int] | None, element: str | None, by: str | None
    ) -> dict[str, int]:
        element_id = await self._element_id(element)
        found = await asyncio.to_thread(self._store.distribution_admin.remove, ids, element_id)
        return await self._operated("distribution-deleted", "deleted", found, by)

    # retry and delete act in one store transaction on the rows that are failed, of
    # ``ids`` and ``element``, when it runs (distribution_admin's one selection): an id
    # retried or deleted meanwhile is left, one failing meanwhile is not taken.

    async def failed(
        self, ids: Sequence[int] | None, element: str | None, limit: int
    ) -> tuple[list[Distribution], int]:
        """The failed distributions of ``ids`` (all when None) and ``element``, the first
        ``limit`` by id, and how many there are: what a retry or delete would take."""
        element_id = await self._element_id(element)
        # Looked up by id, not among the first rows a page lists (distribution_admin
        # lists without ids): its retry and delete's own selection.
        return await asyncio.to_thread(
            self._store.distribution_admin.failed, ids, element_id, limit
        )

    async def _element_id(self, name: str | None) -> int | None:
        if name is None:
            return None
        return (await asyncio.to_thread(self._store.elements.get, name)).id

    async def _operated(
        self, event: str, verb: str, found: dict[str, int], by: str | None
    ) -> dict[str, int]:
        if not found:
            raise InvalidRequest(f"no distribution to be {verb} matched")
        for name, count in found.items():
            await self._alarms.emit_event(
                event,
                name,
                details={"count": count, "by": by},
                text=f"{counted(count, 'failed distribution')} to {name} {verb}"
                + (f" by {by}" if by else ""),
            )
        await self._dispatcher.recount()
        for element in await asyncio.to_thread(self._store.elements.all):
            if element.name in found:
                await self._refresh_errors(element.id, element.name)
                self._dispatcher.wake(element.id)
        return found

    async def purge_loop(self) -> None:
        """Applied distributions stay listed for [sharing] keep_done, then go."""
        while True:
            await self.purge_once()
            await asyncio.sleep(min(600.0, max(self._settings.keep_done / 4, 1.0)))

    async def purge_once(self) -> int:
        """One purge round; a store outage is one throttled line, and the loop lives on
        (a task that died of it would never purge again)."""
        try:
            removed = await asyncio.to_thread(
                self._store.distribution_admin.purge_done, self._settings.keep_done
            )
        except ProvsyncError as exc:
            logger.warning("distribution purge failed: {}", exc)
            return 0
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            self._outages.warning("distribution purge: store write failed", exc)
            return 0
        if removed:
            logger.info("purged {} applied distributions", removed)
        return removed
