"""The elements as witnesses of the hub's past: a restored store is found from what they
applied, not from a file of the data directory alone.

Each applied distribution batch records, in the store's ``meta`` (it travels with the
store), the element's change sequence number after the hub's last update it applied
(agent.store.distributions.record_applied). At start, before an element's sender sends
anything, its change log after that mark is read: an update written by the hub's service
user there that the store knows nothing of (not one of its open records with that data:
in flight at a crash, or pending again after a lost answer) was given by this store after
the copy now running was taken, or by another one.
Either way the store is behind what the elements hold: a restore, also onto a new or
reinstalled server where the identity file is gone (agent.sharing.identity).

The sender stays held until sharing is disabled, so a restored store sends none of its
stale updates; an element that calls in (so is up) while its log waits for the next
attempt is read at once, and its sync, which takes the same hold, does not wait. The
marks are cleared when sharing is disabled and when an element starts sharing
(agent.sharing.identity, agent.sharing.membership): the logs keep what a restored store
lacks, which an old mark would find again at every start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from loguru import logger

from agent.config import SharingSettings, SyncSettings
from agent.connectors.base import Connector
from agent.connectors.connections import ElementConnections
from agent.errors import ConnectorError, CursorGone, ElementUnreachable
from agent.sharing.distribution import Dispatcher
from agent.sharing.tasks import Tasks
from agent.store.access import StoreAccess
from agent.store.distributions import applied_key, record_applied
from agent.store.elements import Element
from agent.store.outage import is_store_outage
from agent.store.rows import dumps

T = TypeVar("T")
Key = tuple[str, str, str, str | None]
"""(class, key, op, data as the store keeps it) of an update."""
Contact = Callable[[Element, ConnectorError | None, int], Awaitable[None]]
"""The contact alarms of a round that reached the element (None) or failed (the error,
how many in a row), as distribution keeps them."""


class ElementWitness:
    """Checks each sharing element's change log against the store's marks at start.

    Args:
        store: the marks (``meta``), the records in flight, the elements.
        connections: opens the elements' connectors (no retries: this has its own).
        dispatcher: whose per-element hold keeps the sender waiting until the check.
        settings, sync: the backoff between attempts; the service user, the timeout,
            the page size.
        disable: disables sharing with the reason (ftp-inactive).
        contact: the contact alarms of each attempt.
        tasks: where the checks run.
    """

    def __init__(
        self,
        store: StoreAccess,
        connections: ElementConnections,
        dispatcher: Dispatcher,
        settings: SharingSettings,
        sync: SyncSettings,
        disable: Callable[[list[str]], Awaitable[None]],
        contact: Contact,
        tasks: Tasks,
    ) -> None:
        self._store = store
        self._connections = connections
        self._dispatcher = dispatcher
        self._settings = settings
        self._sync = sync
        self._disable = disable
        self._contact = contact
        self._tasks = tasks
        self.checking: set[str] = set()
        """The elements whose check has not ended yet (tests and status wait on it)."""
        self._waiting: dict[int, tuple[Element, asyncio.Event]] = {}
        """The elements whose check waits for its next attempt, and what wakes it."""

    async def start(self) -> None:
        """Before the senders start: hold each sharing element's distribution until its
        change log was read (in the background, retried while the element is down)."""
        meta = self._store.meta
        inflight = await asyncio.to_thread(self._store.distributions.inflight)
        for element in await asyncio.to_thread(self._store.elements.all):
            if not element.sharing:
                continue
            mark = await asyncio.to_thread(meta.get, applied_key(element.id))
            # None (a store older than the marks, an element given nothing yet): the
            # element's log as it is now is where the witness starts.
            after = int(mark) if mark else None
            hold = self._dispatcher.hold(element.id)
            await hold.acquire()
            self.checking.add(element.name)
            self._tasks.spawn(
                self._watch(element, after, inflight.get(element.id, set()), hold),
                f"witness:{element.name}",
            )

    def called_in(self, ident: str) -> None:
        """The element (by name or by the id it gives itself) called the hub, or a sync is
        about to read it: if its check waits for the next attempt, it is made now."""
        for element, woken in self._waiting.values():
            if ident and ident in (element.name, element.remote_id):
                woken.set()

    async def _watch(
        self, element: Element, after: int | None, inflight: set[Key], hold: asyncio.Lock
    ) -> None:
        woken = asyncio.Event()
        self._waiting[element.id] = (element, woken)
        try:
            verdict = await self._attempts(element, after, inflight, woken)
            if verdict:
                logger.warning("sharing disabled: {}", verdict)
                # Still holding the sender: it must find sharing disabled when it goes on,
                # not send the restored store's pending updates first.
                await self._disable_held(verdict)
        finally:
            self._waiting.pop(element.id, None)
            hold.release()
            self.checking.discard(element.name)

    async def _attempts(
        self, element: Element, after: int | None, inflight: set[Key], woken: asyncio.Event
    ) -> str:
        """The verdict of the first attempt that reads the element's log ("" also when the
        element no longer shares)."""
        wait, failures = self._settings.retry_initial, 0
        while True:
            try:
                current = await asyncio.to_thread(self._store.elements.by_id, element.id)
                if current is None or not current.sharing:
                    return ""
                # Read again at each attempt: a disable or a Start Sharing since (another
                # element's witness, the operator) reset it.
                mark = await asyncio.to_thread(self._store.meta.get, applied_key(element.id))
                after = int(mark) if mark else None
                verdict = await self._check(current, after, inflight)
            except ConnectorError as exc:
                failures += 1
                if failures == 1:
                    logger.warning(
                        "{}'s change log could not be read to check the store ({}): "
                        "its distribution waits",
                        element.name,
                        exc,
                    )
                await self._contact(current or element, exc, failures)
                await self._pause(woken, wait)
                wait = min(wait * 2, self._settings.retry_max)
                continue
            except Exception as exc:
                # The store is down: no verdict yet, so the sender stays held (a restored
                # store must not send its pending updates unchecked).
                if not is_store_outage(exc):
                    raise
                logger.warning("{}'s store check waits for the store ({})", element.name, exc)
                await self._pause(woken, wait)
                wait = min(wait * 2, self._settings.retry_max)
                continue
            if failures:
                await self._contact(current, None, 0)
            return verdict

    async def _disable_held(self, verdict: str) -> None:
        # A store outage must not let the sender go on from a store found restored: the
        # disable is tried again until the store answers.
        wait = self._settings.retry_initial
        while True:
            try:
                await self._disable([verdict])
                return
            except Exception as exc:
                if not is_store_outage(exc):
                    raise
                logger.warning("sharing could not be disabled yet ({}): tried again", exc)
            await asyncio.sleep(wait)
            wait = min(wait * 2, self._settings.retry_max)

    @staticmethod
    async def _pause(woken: asyncio.Event, seconds: float) -> None:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancel (the stop) that comes
        # as the event is set, and the check would go on after the stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await woken.wait()
        woken.clear()

    async def _check(self, element: Element, after: int | None, inflight: set[Key]) -> str:
        """Why the store is behind the element ("" when it is not, or cannot be told)."""
        async with await self._connections.open(element, retries=0) as connector:
            if after is None:
                info = await self._bounded(connector.info())
                await asyncio.to_thread(self._baseline, element, info.last_seq)
                return ""
            try:
                return await self._read(element, connector, after, inflight)
            except CursorGone as exc:
                # Its log no longer reaches the mark, or it was itself reset: no witness.
                logger.info(
                    "{}'s change log cannot tell whether the store is current: {}",
                    element.name,
                    exc,
                )
                return ""

    async def _read(
        self, element: Element, connector: Connector, after: int, inflight: set[Key]
    ) -> str:
        mark, user = after, self._sync.service_user
        while True:
            page = await self._bounded(
                connector.changes(after, epoch=None, limit=self._sync.page_size)
            )
            for change in page.changes:
                # With the data: another update of an object this store has on its way
                # came from a store ahead of it. The element logs an update's data as it
                # was applied (docs/element-api.md, GET /changes), so the store's own
                # matches its record exactly.
                record = (change.cls, change.key, change.op, dumps(change.data))
                if change.user == user and record not in inflight:
                    return (
                        f"{element.name} holds a hub update this store has no record of "
                        f"({change.op} of {change.cls} {change.key}, its change {change.seq}; "
                        f"the store knows of those up to {mark}): the store was restored "
                        "from a backup or moved from another server"
                    )
            if not page.changes or page.changes[-1].seq >= page.last_seq:
                return ""
            after = page.changes[-1].seq

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._sync.timeout + 1.0):
                return await call
        except TimeoutError:
            raise ElementUnreachable(f"no answer within {self._sync.timeout:g} s") from None

    def _baseline(self, element: Element, last_seq: int) -> None:
        with self._store.begin() as conn:
            record_applied(conn, element.id, last_seq)
