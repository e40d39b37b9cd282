"""Distribution: each element's hub updates go out in order, one sender per element.

Records are durable (pending -> inflight -> done | error). A transport failure puts the
batch back with backoff; a rejection is a distribution error the operator retries or
deletes. Nothing is sent while sharing is blocked (sync required, reconcile required).

A store outage is not a bug: each sender waits (doubling from [sharing] retry_initial up
to retry_max) and the dispatcher logs one throttled line for all of them; a batch whose
outcome could not be recorded goes out again once the store answers (updates are
idempotent), rather than staying in flight until the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from loguru import logger

from agent.clock import now
from agent.config import SharingSettings, SyncSettings
from agent.connectors.base import Connector
from agent.connectors.connections import ElementConnections
from agent.errors import ConnectorError, UpdateRejected
from agent.store.access import StoreAccess
from agent.store.distributions import Distribution, Outcome
from agent.store.elements import Element
from agent.store.outage import ThrottledLog, is_store_outage


class Dispatcher:
    """Per-element sender tasks over the distribution records.

    Args:
        store: the store's repositories.
        settings, sync: [sharing] and [sync] settings (batches, backoff, service user).
        blocked: returns a reason while sharing of hub updates is blocked, else "".
        on_settled: called (element id, name) after rejections or operator changes, to
            refresh the element's distribution-errors alarm.
        on_contact: called (element, error or None, consecutive failures) after a round
            that reached the element, or failed to, for the contact alarms.
        connections: opens the elements' connectors.
        clock: the wall clock the records' due times are compared with.
    """

    def __init__(
        self,
        store: StoreAccess,
        settings: SharingSettings,
        sync: SyncSettings,
        blocked: Callable[[], str],
        on_settled: Callable[[int, str], Awaitable[None]],
        on_contact: Callable[[Element, ConnectorError | None, int], Awaitable[None]],
        *,
        connections: ElementConnections,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.store = store
        self._connections = connections
        self._clock = clock
        self.settings = settings
        self.sync = sync
        self._blocked = blocked
        self._on_settled = on_settled
        self._on_contact = on_contact
        self._failures: dict[int, int] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._holds: dict[int, asyncio.Lock] = {}
        self._open: dict[int, int] = {}
        """Pending + in flight + failed records per element (for the cap of hub changes)."""
        self._outage_log = ThrottledLog()
        self._stranded: dict[int, list[Distribution]] = {}
        """Batches taken (in flight) whose outcome a store failure kept from being recorded."""
        self._reconnect: set[int] = set()
        """Elements whose kept connection is stale (new address or credentials)."""

    async def start(self) -> None:
        requeued = await asyncio.to_thread(self.store.distributions.requeue_inflight)
        if requeued:
            logger.info("{} distributions in flight at the last stop go out again", requeued)
        await self.recount()
        for element in await asyncio.to_thread(self.store.elements.all):
            if element.sharing:
                self.ensure(element.id, element.name)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def recount(self) -> None:
        counts = await asyncio.to_thread(self.store.distributions.open_counts)
        self._open = {
            element_id: sum(n for state, n in states.items() if state != "failed")
            for element_id, states in counts.items()
        }

    def waiting(self, element_id: int) -> int:
        """The element's pending, in-flight and failed records, as counted."""
        return self._open.get(element_id, 0)

    def queued(self, element_ids: Iterable[int], count: int) -> None:
        """``count`` records were just written for each of ``element_ids``."""
        for element_id in element_ids:
            self._open[element_id] = self._open.get(element_id, 0) + count

    def ensure(self, element_id: int, name: str) -> None:
        task = self._tasks.get(element_id)
        if task is None or task.done():
            self._wake.setdefault(element_id, asyncio.Event())
            self._tasks[element_id] = asyncio.create_task(
                self._loop(element_id, name), name=f"distribution:{name}"
            )
        self.wake(element_id)

    def hold(self, element_id: int) -> asyncio.Lock:
        """Held by a sending round, and by a sync from the element: the element's data must
        not change under a sync that reads it (the base would run ahead of what was read)."""
        return self._holds.setdefault(element_id, asyncio.Lock())

    def reconnect(self, element_id: int) -> None:
        """The element's address or credentials changed: its sender's next round opens a
        new connection (the one it keeps was made with the old ones)."""
        self._reconnect.add(element_id)
        self.wake(element_id)

    def wake(self, element_id: int | None = None) -> None:
        for key, event in self._wake.items():
            if element_id is None or key == element_id:
                event.set()

    async def forget(self, element_id: int) -> None:
        task = self._tasks.pop(element_id, None)
        self._wake.pop(element_id, None)
        self._open.pop(element_id, None)
        self._stranded.pop(element_id, None)
        self._reconnect.discard(element_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sleep(self, element_id: int, seconds: float) -> None:
        event = self._wake[element_id]
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
        # that arrives as the event is set, and the sender then outlives stop().
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
        event.clear()

    async def _loop(self, element_id: int, name: str) -> None:
        backoff = self.settings.retry_initial
        # Separate from the transport backoff: a failed round doubles it, a good one resets it.
        wait = self.settings.retry_initial
        connector: Connector | None = None
        try:
            while True:
                try:
                    backoff, connector = await self._round(element_id, backoff, connector)
                    wait = self.settings.retry_initial
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if is_store_outage(exc):
                        self._outage_log.warning("distribution waits for the store", exc)
                    else:
                        logger.exception("distribution to {} failed unexpectedly", name)
                # The connection may be half-used by the failed round: start afresh.
                if connector is not None:
                    with contextlib.suppress(Exception):
                        await connector.close()
                    connector = None
                await self._sleep(element_id, wait)
                wait = min(wait * 2, self.settings.retry_max)
        finally:
            if connector is not None:
                with contextlib.suppress(Exception):
                    await connector.close()

    async def _round(
        self, element_id: int, backoff: float, connector: Connector | None
    ) -> tuple[float, Connector | None]:
        if element_id in self._reconnect:
            self._reconnect.discard(element_id)
            if connector is not None:
                with contextlib.suppress(Exception):
                    await connector.close()
                connector = None
        stranded = self._stranded.get(element_id)
        if stranded:
            untried = Outcome(
                untried=stranded,
                transport_error="the store failed before the outcome was recorded; sent again",
            )
            await asyncio.to_thread(self.store.distributions.settle, element_id, untried, 0.0)
            del self._stranded[element_id]
        sent: tuple[float, Connector | None] | None = None
        async with self.hold(element_id):
            # Read under the hold, not before waiting for it: its holder (the witness that
            # found a restore, a sync) may have disabled sharing or blocked it meanwhile.
            element = await asyncio.to_thread(self.store.elements.by_id, element_id)
            if element is None or not element.sharing or self._blocked():
                element = None
            else:
                sent = await self._send(element, backoff, connector)
        if element is None:  # not sharing now: look again later (or at a wake-up)
            await self._sleep(element_id, 5.0)
            return backoff, connector
        if sent is None:  # nothing due: sleep until the next one is (or a wake-up)
            due = await asyncio.to_thread(self.store.distributions.next_due, element_id)
            wait = 30.0 if due is None else (due - self._clock()).total_seconds()
            await self._sleep(element_id, min(max(wait, 0.01), 30.0))
            return backoff, connector
        return sent

    async def _send(
        self, element: Element, backoff: float, connector: Connector | None
    ) -> tuple[float, Connector | None] | None:
        element_id = element.id
        batch = await asyncio.to_thread(
            self.store.distributions.take_batch, element_id, self.settings.batch_size
        )
        if not batch:
            return None
        self._stranded[element_id] = batch  # until its outcome is recorded
        if connector is None:
            # No retries inside the connector: the sender has its own backoff.
            connector = await self._connections.open(element, retries=0)
        outcome = Outcome()
        failure: ConnectorError | None = None
        for index, row in enumerate(batch):
            try:
                seq = await connector.apply(
                    row.cls, row.key, row.op, row.data, user=self.sync.service_user
                )
            except UpdateRejected as exc:
                outcome.rejected.append((row, str(exc) or "rejected"))
            except ConnectorError as exc:
                outcome.untried = batch[index:]
                outcome.transport_error = str(exc)
                failure = exc
                break
            else:
                outcome.done.append(row)
                outcome.seqs[row.id] = seq or 0
                # Kept with the store: the element's witness of what this store gave it.
                outcome.applied_seq = max(outcome.applied_seq, seq or 0)
        superseded = await asyncio.to_thread(
            self.store.distributions.settle, element_id, outcome, backoff
        )
        self._stranded.pop(element_id, None)
        gone = len(outcome.done) + superseded
        self._open[element_id] = max(0, self._open.get(element_id, 0) - gone)
        if outcome.rejected or superseded or any(r.rejected for r in outcome.done):
            await self._on_settled(element_id, element.name)
        failures = self._failures.get(element_id, 0) + 1 if failure is not None else 0
        await self._on_contact(element, failure, failures)
        self._failures[element_id] = failures
        if outcome.untried:
            logger.warning(
                "distribution to {}: {} (next try in {:.1f} s)",
                element.name,
                outcome.transport_error,
                backoff,
            )
            await connector.close()
            return min(backoff * 2, self.settings.retry_max), None
        return self.settings.retry_initial, connector
