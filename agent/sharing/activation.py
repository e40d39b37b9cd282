"""Messaging activation: a messaging element is programmed with other network elements;
when one of them is updated or removed, it needs an activation
(element-updated-activation-required, cleared by the activation)."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.alarms.ports import AlarmSink
from agent.connectors.connections import ElementConnections
from agent.errors import InvalidRequest
from agent.sharing.sink import clear_if_active
from agent.store.access import StoreAccess
from agent.store.element_types import MESSAGING

ACTIVATION_REQUIRED = "element-updated-activation-required"


class Activation:
    """Raises the activation alarms and activates messaging elements.

    Args:
        store: the elements (their type and the elements they are programmed with).
        alarms: where the activation alarms are raised and cleared.
        connections: opens the messaging element's connector.
    """

    def __init__(
        self, store: StoreAccess, alarms: AlarmSink, connections: ElementConnections
    ) -> None:
        self._store = store
        self._alarms = alarms
        self._connections = connections

    async def element_updated(self, name: str, how: str) -> None:
        """A network element changed: messaging elements programmed with it need activation."""
        for element in await asyncio.to_thread(self._store.elements.all):
            if element.type == MESSAGING and name in element.uses:
                await self._alarms.raise_alarm(
                    ACTIVATION_REQUIRED,
                    element.name,
                    qualifier=name,
                    text=f"network element {name}, which {element.name} is programmed with, "
                    f"was {how}; activate {element.name}",
                )

    async def activate(self, name: str) -> dict[str, Any]:
        """Send the messaging element its programming; its activation alarms clear."""
        element = await asyncio.to_thread(self._store.elements.get, name)
        if element.type != MESSAGING:
            raise InvalidRequest(
                f"{name} is a {element.type}; only messaging elements are activated"
            )
        known = {e.name: e for e in await asyncio.to_thread(self._store.elements.all)}
        programming = [
            {
                "name": n,
                "address": known[n].address,
                "type": known[n].type,
                "software_version": known[n].software_version,
            }
            for n in element.uses
            if n in known
        ]
        async with await self._connections.open(element) as connector:
            await connector.activate(programming)
        for _, resource, qualifier in self._alarms.active_keys(ACTIVATION_REQUIRED):
            if resource == name:
                await clear_if_active(
                    self._alarms, ACTIVATION_REQUIRED, name, qualifier, "activation performed"
                )
        return {"activated": name, "elements": programming}
