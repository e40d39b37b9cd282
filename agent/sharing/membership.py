"""Elements joining the sharing group (start sharing, its version checked) and leaving
it (removed: their sharing records go)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from packaging.version import InvalidVersion, Version

from agent.alarms.ports import AlarmSink
from agent.connectors.connections import ElementConnections
from agent.errors import InvalidRequest, SharingError
from agent.sharing.group import SYNC_REQUIRED
from agent.store.access import StoreAccess
from agent.store.distributions import applied_key
from agent.store.elements import Element


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise InvalidRequest(f"{text!r} is not a software version such as 10.2.1") from None


class Membership:
    """Which elements share with the hub.

    Args:
        store: the elements' sharing state, the records dropped with an element.
        alarms: sharing-refused, sharing-started, sync-required.
        connections: asks an element its version when an operator starts it.
        min_element_version: [sharing] min_element_version.
        mark_release: records that sharing is enabled under this release.
    """

    def __init__(
        self,
        store: StoreAccess,
        alarms: AlarmSink,
        connections: ElementConnections,
        min_element_version: str,
        mark_release: Callable[[], Awaitable[None]],
    ) -> None:
        self._store = store
        self._alarms = alarms
        self._connections = connections
        self._minimum = min_element_version
        self._mark_release = mark_release

    async def start(self, ident: str, software_version: str | None) -> Element:
        """Start sharing for an element; without a version (an operator starting it from
        the hub) the element is asked for its own. Returns the element (as read before).

        Raises:
            SharingError: the element runs a version older than the minimum.
        """
        element = await asyncio.to_thread(self._store.elements.find, ident)
        if software_version is None:
            async with await self._connections.open(element) as connector:
                software_version = (await connector.info()).software_version
        minimum = self._minimum
        if _version(software_version) < _version(minimum):
            text = (
                f"Sharing could not be started: {element.name} runs {software_version}, "
                f"older than the minimum {minimum}; the attempt was reverted"
            )
            await self._alarms.emit_event(
                "sharing-refused",
                element.name,
                text=text,
                details={"software_version": software_version, "minimum": minimum},
            )
            raise SharingError(text)
        if not element.sharing:
            # Its witness mark goes before sharing starts: one left from before (a restore
            # found, the element out of the group) would find the hub updates its log kept
            # from then at the next start, and disable sharing again. Cleared rather than
            # set to the element's last_seq: that would mean asking an element that is
            # calling us; the next applied update, or else the next start, sets it from
            # its log. (One already sharing keeps its mark: it is current.)
            await asyncio.to_thread(self._store.meta.set, applied_key(element.id), "")
        await asyncio.to_thread(self._store.elements.set_state, element.id, sharing=True)
        await self._mark_release()
        await self._alarms.emit_event(
            "sharing-started",
            element.name,
            text=f"{element.name} started sharing with the hub",
            details={"software_version": software_version},
        )
        await self._alarms.raise_alarm(
            SYNC_REQUIRED,
            element.name,
            text=f"{element.name} started sharing; no sync from an element has completed since",
        )
        return element

    async def drop_records(self, element: Element) -> None:
        """The element is removed: its base, distributions, device data and conflicts."""
        store = self._store

        def work() -> None:
            with store.begin() as conn:
                store.drop_sharing_records(conn, element.id)
            # Its witness mark goes too: an element added later under the same id starts
            # from its own log (agent.sharing.witness).
            store.meta.set(applied_key(element.id), "")

        await asyncio.to_thread(work)
