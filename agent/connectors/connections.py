"""Connectors to stored elements, opened with their decrypted credentials."""

from __future__ import annotations

import asyncio

from agent.config import SyncSettings
from agent.connectors.base import Connector
from agent.connectors.registry import ConnectorFactory, connect
from agent.store.access import StoreAccess
from agent.store.elements import Element
from agent.store.encryption import KeyRing


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
        credentials = await asyncio.to_thread(
            self._store.elements.credentials, element.id, self._ring
        )
        return self._factory(
            element,
            credentials,
            timeout=self._sync.timeout,
            retries=self._sync.retries if retries is None else retries,
        )
