"""Connectors to stored elements, opened with their decrypted credentials."""

from __future__ import annotations

import asyncio
from typing import Protocol

from agent.config import SyncSettings
from agent.connectors.base import Connector, Credentials
from agent.connectors.registry import connect
from agent.store.access import StoreAccess
from agent.store.elements import Element
from agent.store.encryption import KeyRing


class ConnectorFactory(Protocol):
    """Makes a connector for a stored element (agent.connectors.registry.connect)."""

    def __call__(
        self, element: Element, credentials: Credentials | None, *, timeout: float, retries: int
    ) -> Connector: ...


class ElementConnections:
    """Opens an element's connector: its registered driver, its stored credentials.

    Args:
        store: reads the sealed credentials.
        ring: decrypts them.
        sync: [sync] timeout and retries.
        factory: makes the connector (tests pass their own).
    """

    def __init__(
        self,
        store: StoreAccess,
        ring: KeyRing,
        sync: SyncSettings,
        factory: ConnectorFactory = connect,
    ) -> None:
        self._store = store
        self._ring = ring
        self._sync = sync
        self._factory = factory

    async def open(self, element: Element, *, retries: int | None = None) -> Connector:
        """A connector for ``element``; ``retries`` None takes [sync] retries."""
        stored = await asyncio.to_thread(self._store.elements.credentials, element.id, self._ring)
        # The connector contract's own type (the same fields): converted at the boundary.
        credentials = None if stored is None else Credentials(stored.username, stored.password)
        return self._factory(
            element,
            credentials,
            timeout=self._sync.timeout,
            retries=self._sync.retries if retries is None else retries,
        )
