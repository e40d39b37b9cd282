"""Updates an element pushes to the hub: taken one by one, shared with the others.

A push from an element that does not share, during a reconcile, or during the element's
own sync is refused whole, with one event (a big push is not an event flood). Each
update is refused on its own when it conflicts with a hub change still waiting for the
element, or would break uniqueness.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agent.errors import InvalidRequest, SharingError
from agent.sharing.changes import checked_change
from agent.sharing.merge import element_op
from agent.sharing.parts import HubComponent, HubParts
from agent.store.elements import Element
from agent.store.shared_data import Change


class Pushes(HubComponent):
    """Takes the updates elements push.

    Args:
        parts: the store, the update-rejected events, the push refusals, the dispatcher.
        classes: [sharing] classes.
    """

    def __init__(self, parts: HubParts, classes: tuple[str, ...]) -> None:
        super().__init__(parts)
        self._classes = classes

    async def push(self, ident: str, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One result per update: accepted, or rejected with the reason."""
        element = await asyncio.to_thread(self._store.elements.find, ident)
        results: list[dict[str, Any]] = []
        if not updates:
            return results
        async with self._gate.hub_lock:
            refusal = self._gate.push_refusal(element)
            if refusal:
                await self._refuse_all(element, updates, refusal)
                return [{"status": "rejected", "reason": refusal} for _ in updates]
            for update in updates:
                results.append(await self._one(element, update))
        await self._dispatcher.recount()
        self._dispatcher.wake()
        return results

    async def _refuse_all(
        self, element: Element, updates: list[dict[str, Any]], refusal: str
    ) -> None:
        first = updates[0] if updates else {}
        what = f"{first.get('class', '')} {first.get('key', '')} ({first.get('op', '')})"
        more = f" and {len(updates) - 1} more" if len(updates) > 1 else ""
        await self._alarms.emit_event(
            "update-rejected",
            element.name,
            text=f"update of {what}{more} from {element.name} rejected: {refusal}",
            details={
                "element": element.name,
                "count": len(updates),
                "updates": updates[:20],
                "reason": refusal,
            },
        )

    async def _one(self, element: Element, update: dict[str, Any]) -> dict[str, Any]:
        cls, key = str(update.get("class", "")), str(update.get("key", ""))
        op, data = str(update.get("op", "")), update.get("data")
        try:
            await asyncio.to_thread(self._take, element, cls, key, op, data)
        except (SharingError, InvalidRequest) as exc:
            reason = str(exc)
            await self._alarms.emit_event(
                "update-rejected",
                element.name,
                text=f"update of {cls} {key} ({op}) from {element.name} rejected: {reason}",
                details={
                    "element": element.name,
                    "class": cls,
                    "key": key,
                    "op": op,
                    "reason": reason,
                },
            )
            return {"status": "rejected", "reason": reason}
        return {"status": "accepted"}

    def _take(self, element: Element, cls: str, key: str, op: str, data: object) -> None:
        change = checked_change(self._classes, cls, key, op, data)
        at = self._clock()
        store = self._store
        with store.begin() as conn:
            waiting = store.distributions.waiting(conn, element.id, cls, key)
            if waiting is not None:
                raise SharingError(
                    f"it conflicts with a pending hub change of {cls} {key} "
                    f"(distribution {waiting.id}, {waiting.state})"
                )
            current = store.shared.current(conn, cls, key)
            if op == "create" and current is not None and current != data:
                raise InvalidRequest(f"{cls} {key} exists on the hub with other data")
            if change.data == current:
                store.bases.set(conn, element.id, [(cls, key, current)])
                return  # nothing new (a replay, or both sides made the same change)
            store.shared.check_unique(conn, change)
            change = Change(cls, key, element_op(current, change.data), change.data)
            store.shared.write(conn, [change], element.name, at)
            store.bases.set(conn, element.id, [(cls, key, change.data)])
            others = store.elements.sharing_targets(conn, exclude=element.id)
            store.distributions.add(conn, others, [change], element.name, at)
