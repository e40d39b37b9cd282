"""The connector contract: how the sync engine talks to any network element.

Every driver subclasses :class:`Connector` and is registered in the
``provsync.connectors`` entry-point group (the built-in ``http`` driver speaks Element
API v1). The engine never knows a vendor: it sees these models and these errors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.errors import ConnectorError

# The contract's credentials are the store's (one type from the store to the driver);
# re-exported so that drivers import the whole contract from here.
from agent.store.elements import Credentials as Credentials


@dataclass(frozen=True)
class ElementInfo:
    element_id: str
    type: str
    software_version: str
    epoch: str
    classes: tuple[str, ...]
    last_seq: int
    counts: dict[str, int] = field(default_factory=dict)
    """Objects per class, when the element says (for progress only)."""
    notify_sync: bool = False
    """The element has CM notify sync on: it tells the hub of its changes as they are made,
    and the incremental skips the changes it says notify sync processed."""


@dataclass(frozen=True)
class ObjectRecord:
    key: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ObjectPage:
    snapshot: str
    objects: tuple[ObjectRecord, ...]
    next: str | None


@dataclass(frozen=True)
class ChangeRecord:
    seq: int
    time: datetime
    user: str
    op: str
    cls: str
    key: str
    data: dict[str, Any] | None
    notify_sync: bool = False
    """Processed by the element's CM notify sync (the hub has it already)."""


@dataclass(frozen=True)
class ChangePage:
    epoch: str
    changes: tuple[ChangeRecord, ...]
    last_seq: int


class Connector(ABC):
    """Async access to one network element.

    Args:
        address: where the element is (for ``http``, its base URL).
        credentials: None when none are configured.
        options: ``timeout`` (seconds) and ``retries`` from [sync]; drivers may ignore them.
    """

    def __init__(self, address: str, credentials: Credentials | None, **options: Any) -> None:
        self.address = address
        self.credentials = credentials

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:  # noqa: B027 - drivers without resources need nothing
        """Release connections."""

    @abstractmethod
    async def info(self) -> ElementInfo:
        """Identity, software version and data epoch.

        Raises:
            AuthMissing, AuthIncorrect: credentials refused.
            ElementUnreachable: no answer after retries.
        """

    @abstractmethod
    async def objects(
        self,
        cls: str,
        *,
        after: str | None = None,
        snapshot: str | None = None,
        limit: int = 1000,
    ) -> ObjectPage:
        """One page of a class in key order; the first call opens a snapshot.

        Raises:
            CursorGone: the snapshot's epoch is gone.
            AuthMissing, AuthIncorrect, ElementUnreachable: as :meth:`info`.
        """

    @abstractmethod
    async def changes(self, after: int, *, epoch: str | None, limit: int = 1000) -> ChangePage:
        """Changes after sequence number ``after``, oldest first.

        Raises:
            CursorGone: the log no longer reaches ``after`` or ``epoch`` is not current.
            AuthMissing, AuthIncorrect, ElementUnreachable: as :meth:`info`.
        """

    @abstractmethod
    async def apply(
        self, cls: str, key: str, op: str, data: dict[str, Any] | None, *, user: str
    ) -> int:
        """Apply a shared update; returns the element's change sequence number.

        Raises:
            UpdateRejected: the element refused it (the message says why).
            AuthMissing, AuthIncorrect, ElementUnreachable: as :meth:`info`.
        """

    async def pages(self, cls: str, *, limit: int = 1000) -> AsyncIterator[ObjectPage]:
        """Every page of a class, in key order, from one snapshot."""
        page = await self.objects(cls, limit=limit)
        yield page
        while page.next is not None:
            page = await self.objects(cls, after=page.next, snapshot=page.snapshot, limit=limit)
            yield page

    async def register_device_data(self) -> None:
        """Ask the element to send the hub device-data notifications.

        Raises:
            ConnectorError: the element (or this driver) does not offer device data.
        """
        raise ConnectorError(f"{type(self).__name__} does not offer device-data notifications")

    async def activate(self, elements: list[dict[str, Any]]) -> None:
        """Messaging elements: apply the programming of the network elements they use.

        Raises:
            ConnectorError: activation failed or is not offered.
        """
        raise ConnectorError(f"{type(self).__name__} does not offer activation")
