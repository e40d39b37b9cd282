"""Element lifecycle: add, update and remove a network element, with their side effects.

- adding one stores it (its credentials sealed) and queues its initialization sync;
- new credentials are tested at once by the hooks (a login: the authentication alarms
  clear or stay without waiting for the next sync), and so is a login test asked for
  with the credentials kept;
- a new address or new credentials are told to the hooks (messaging elements programmed
  with it need an activation), but not the same ones saved again: nothing changed;
- removing one stops its sync jobs and clears its alarms, lets the hooks drop what they
  keep about it, then removes it with the hub's copy of its objects.

The hooks are sharing's (app.py attaches them); sync does not import sharing, which sits
above it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from agent.errors import ProvsyncError
from agent.store.access import StoreAccess
from agent.store.elements import Credentials, Element
from agent.store.encryption import KeyRing


class ElementHooks(Protocol):
    """What a component above sync is told about elements (the sharing service)."""

    async def element_updated(self, name: str, how: str) -> None:
        """``name`` changed (``how``: "given new credentials", "upgraded from ...")."""
        ...

    async def forget(self, element: Element) -> None:
        """``element`` is being removed: drop what is kept about it."""
        ...

    async def credentials_set(self, element: Element) -> str:
        """``element``'s credentials were saved: test them now (its contact alarms follow
        the outcome); returns the outcome in words."""
        ...


QueueInit = Callable[[str], Awaitable[int]]
"""Queue the initialization of a newly added element (its name): the job id."""
StopSyncs = Callable[[str], Awaitable[None]]
"""Stop an element's sync jobs and clear its alarms (its name)."""


class ElementLifecycle:
    def __init__(
        self,
        store: StoreAccess,
        ring: KeyRing,
        default_interval: int,
        queue_init: QueueInit,
        stop_syncs: StopSyncs,
    ) -> None:
        self.store = store
        self.ring = ring
        """Seals the credentials the store keeps."""
        self.default_interval = default_interval
        """``[sync] incremental_interval``: an element's schedule unless it is given one."""
        self._queue_init = queue_init
        self._stop_syncs = stop_syncs
        self.hooks: ElementHooks | None = None
        """Sharing's, attached by app.py once the sharing service is built."""

    async def add(
        self,
        name: str,
        element_type: str,
        address: str,
        connector: str,
        *,
        interval: int | None = None,
        credentials: Credentials | None = None,
        cron: str = "",
        uses: list[str] | None = None,
    ) -> tuple[Element, int]:
        """Store the element and queue its initialization: the element and the job id.

        ``interval`` None: ``[sync] incremental_interval``.

        Raises:
            InvalidRequest: a bad type, address, schedule or ``uses``, or the name exists.
        """
        element = await asyncio.to_thread(
            self.store.elements.add,
            name,
            element_type,
            address,
            connector,
            self.default_interval if interval is None else interval,
            credentials,
            cron,
            uses,
            ring=self.ring,
        )
        return element, await self._queue_init(element.name)

    async def update(
        self,
        name: str,
        *,
        interval: int | None = None,
        cron: str | None = None,
        url: str | None = None,
        uses: list[str] | None = None,
    ) -> Element:
        """Change what is given (schedule, address, ``uses``): the element as it is now.

        Raises:
            ElementNotFound: no such element. InvalidRequest: a bad value.
        """
        before = await asyncio.to_thread(self.store.elements.get, name)
        element = await asyncio.to_thread(
            self.store.elements.set_schedule, name, interval, cron, url, uses
        )
        if url is not None and element.address != before.address:
            # Only a real move: the same address saved again changes nothing on the
            # messaging elements programmed with it.
            await self.updated(name, f"given the address {url}")
        return element

    async def set_credentials(self, name: str, credentials: Credentials) -> str:
        """Replace the element's credentials (sealed in the store) and test them at once;
        returns the test's outcome in words ("" when nothing tests them).

        Raises:
            ElementNotFound: no such element.
        """
        element = await asyncio.to_thread(self.store.elements.get, name)
        before = await asyncio.to_thread(self._current_credentials, element)
        await asyncio.to_thread(self.store.elements.set_credentials, name, credentials, self.ring)
        outcome = ""
        if self.hooks is not None:
            # The authentication alarms name this command as their fix: the fix must show
            # at once, not at the next sync (up to a day later).
            outcome = await self.hooks.credentials_set(element)
        if before != credentials:
            await self.updated(name, "given new credentials")
        return outcome

    async def test_login(self, name: str) -> str:
        """Log in to the element with the credentials it has, as saving them does: the
        contact alarms follow the outcome; returns it in words ("" when nothing tests
        them).

        Raises:
            ElementNotFound: no such element.
        """
        element = await asyncio.to_thread(self.store.elements.get, name)
        if self.hooks is None:
            return ""
        # The same test as new credentials get (an operator checking a fixed element or
        # a restored network does not retype the password to learn the outcome).
        return await self.hooks.credentials_set(element)

    def _current_credentials(self, element: Element) -> Credentials | None:
        try:
            return self.store.elements.credentials(element.id, self.ring)
        except ProvsyncError:  # unreadable (another key): the new ones are a change
            return None

    async def remove(self, name: str) -> None:
        """Stop its syncs, let the hooks forget it, remove it and the hub's copy.

        Raises:
            ElementNotFound: no such element.
        """
        element = await asyncio.to_thread(self.store.elements.get, name)
        await self._stop_syncs(name)
        if self.hooks is not None:
            await self.hooks.forget(element)
        await asyncio.to_thread(self.store.elements.remove, name)

    async def updated(self, name: str, how: str) -> None:
        """Tell the hooks, if any, that ``name`` changed."""
        if self.hooks is not None:
            await self.hooks.element_updated(name, how)
