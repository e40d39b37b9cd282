"""Agent lifecycle: components start in order and stop in reverse.

Order: store (lock, migrate, key ring) -> alarm manager -> SNMP -> exporters ->
agent-started event -> sync engine -> sharing (identity check, distribution senders) ->
control API. The agent-started event (the SNMP targets' coldStart / warmStart) comes
before anything sync or sharing raise at start, so an NMS that resets its view of the
agent on coldStart keeps those alarms.
Stop: agent-stopping event -> control API -> sharing -> sync -> exporters drain -> alarm
manager -> store. Signal handlers only set an event; shutdown has a timeout.

Wiring is explicit: the store access (one ``StoreAccess`` over the opened store), the
clock and the connector factory are built or given here and passed to the sync engine
and to sharing; sharing is attached to the sync engine as its element hooks. What is
built from the settings alone (catalog, tokens, exporters, event loop) is in
agent.wiring; the HTTP server in agent.api.server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from agent import __version__
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import PurgeOp
from agent.api.server import serve_api
from agent.api.services import Services
from agent.clock import SYSTEM_CLOCK, Clock
from agent.config import Settings
from agent.connectors.registry import ConnectorFactory, connect
from agent.errors import ProvsyncError, StoreError, StoreLockedError
from agent.export.base import Exporter
from agent.export.snmp import start_traps
from agent.export.snmp.service import SnmpService
from agent.export.syslog.agentlog import SyslogSink
from agent.file_modes import PRIVATE_UMASK, secure_data_dir
from agent.kept_files import agent_files
from agent.sharing.service import SharingService
from agent.store.access import StoreAccess
from agent.store.database import Store, redact_url
from agent.store.encryption import KeyRing, open_key_ring
from agent.sync.engine import SyncEngine
from agent.syslog_facilities import FACILITIES
from agent.wiring import (
    agent_hostname,
    build_exporters,
    loop_factory,
    resolve_element_token,
    resolve_token,
    site_catalog,
)

# Measured need: under a burst of API writes the collector's young-generation passes
# (every 700 allocations by default) ran thousands of times a second over a heap of
# live alarm rows, log-tail entries and view rows; 50,000 keeps them rare (a batch of
# 1,000 raises answered 7,000-8,800/s by default, 9,800-11,100/s so, same run). The
# objects made while starting are frozen (never scanned again) once the agent runs.
GC_THRESHOLD = (50_000, 20, 100)

LeadHook = Callable[[AlarmManager, Store], Awaitable[None]]
"""Called once the agent-started event is committed, before sync and sharing start (the
cluster's leader records that it leads, agent.cluster)."""


def run_agent(settings: Settings) -> None:
    """Run the agent to its end in the event loop ``[agent] event_loop`` chooses."""
    gc.set_threshold(*GC_THRESHOLD)
    name, factory = loop_factory(settings.agent.event_loop)
    agent = Agent(settings, loop_name=name)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(agent.run())


class Agent:
    def __init__(
        self,
        settings: Settings,
        loop_name: str = "asyncio",
        *,
        clock: Clock = SYSTEM_CLOCK,
        connector_factory: ConnectorFactory = connect,
        on_lead: LeadHook | None = None,
        cluster_status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        """The time of the sync engine and of sharing."""
        self.connector_factory = connector_factory
        """How the sync engine and sharing reach elements (their registered drivers)."""
        self.loop_name = loop_name
        """Which event loop runs the agent, for the start-up line (run_agent chooses it)."""
        self.stop_event = asyncio.Event()
        self.store: Store | None = None
        self.manager: AlarmManager | None = None
        self.exporters: list[Exporter] = []
        self.snmp: SnmpService | None = None
        self.ring: KeyRing | None = None
        self.failure: ProvsyncError | None = None
        """Why the agent stopped on its own (``run`` raises it after a graceful stop)."""
        self.stop_requested = False
        """A signal or ``POST /api/v1/shutdown`` asked the agent to stop (not a take-over)."""
        self.on_lead = on_lead
        self.cluster_status = cluster_status
        """The members and the leader, for the status route (None: no [cluster])."""

    def request_stop(self) -> None:
        self.stop_requested = True
        self.stop_event.set()

    def _store_taken_over(self, message: str) -> None:
        # Another agent owns the store: this one's state is stale and it must never write
        # again, so it stops (systemd restarts it, and it is refused while the other runs;
        # a [cluster] member stands by instead, agent.cluster).
        self.failure = StoreLockedError(message)
        self.stop_event.set()

    @contextlib.asynccontextmanager
    async def _store(self) -> AsyncIterator[Store]:
        settings = self.settings
        store = Store(
            settings.store_url,
            sqlite_synchronous=settings.store.sqlite_synchronous,
            lock_check_interval=settings.store.lock_check_interval,
            server_timeout=settings.store.server_timeout,
        )
        loop = asyncio.get_running_loop()

        def lost(message: str) -> None:  # from the store's watch thread
            loop.call_soon_threadsafe(self._store_taken_over, message)

        store.on_lost(lost)
        await asyncio.to_thread(store.open)
        self.store = store
        try:
            # Before anything reads the store: a missing or wrong key stops the start here.
            self.ring = await asyncio.to_thread(
                open_key_ring, settings.store_key_file, store.engine
            )
            yield store
        finally:
            await asyncio.to_thread(store.close)
            logger.info("store closed")

    @contextlib.asynccontextmanager
    async def _manager(self, store: Store) -> AsyncIterator[AlarmManager]:
        manager = AlarmManager(
            store.engine,
            site_catalog(self.settings),
            batch_max=self.settings.store.batch_max,
            pending_max=self.settings.api.max_pending_writes,
            write_guard=store.check_writable,
        )
        await asyncio.to_thread(manager.start)
        self.manager = manager
        try:
            yield manager
        finally:
            await asyncio.to_thread(manager.stop)

    @contextlib.asynccontextmanager
    async def _snmp(
        self, manager: AlarmManager, store: Store, host: str, started_at: datetime
    ) -> AsyncIterator[SnmpService | None]:
        if not self.settings.snmp.enabled:
            yield None
            return
        service = SnmpService(self.settings, manager, store.engine, host, started_at)
        await service.start()
        self.snmp = service
        try:
            yield service
        finally:
            await service.stop()

    @contextlib.asynccontextmanager
    async def _sync(self, manager: AlarmManager, access: StoreAccess) -> AsyncIterator[SyncEngine]:
        assert self.ring is not None, "the store step opens the key ring"
        engine = SyncEngine(
            self.settings.sync,
            manager,
            access,
            self.ring,
            clock=self.clock,
            connector_factory=self.connector_factory,
            # A [cluster]'s leader takes over the jobs the dead leader was running.
            retry_interrupted=self.on_lead is not None,
        )
        await engine.start()
        try:
            yield engine
        finally:
            await engine.stop()

    @contextlib.asynccontextmanager
    async def _sharing(
        self, manager: AlarmManager, sync: SyncEngine, store: Store, access: StoreAccess
    ) -> AsyncIterator[SharingService]:
        assert self.ring is not None, "the store step opens the key ring"
        service = SharingService(
            self.settings.sharing,
            self.settings.sync,
            manager,
            access,
            self.settings.data_dir,
            store.identity,
            self.ring,
            connector_factory=self.connector_factory,
            clock=self.clock,
        )
        await service.start()
        sync.attach(service)
        try:
            yield service
        finally:
            await service.stop()

    @contextlib.asynccontextmanager
    async def _exporters(
        self, manager: AlarmManager, host: str, snmp: SnmpService | None
    ) -> AsyncIterator[None]:
        self.exporters = build_exporters(self.settings, manager, host, snmp)
        for exporter in self.exporters:
            await exporter.start()
        try:
            yield
        finally:
            timeout = self.settings.agent.shutdown_timeout
            await asyncio.gather(*(e.stop(timeout) for e in self.exporters))

    async def _purge_loop(self, manager: AlarmManager) -> None:
        retention = self.settings.retention
        op = PurgeOp(
            retention.cleared_alarm_days,
            retention.event_days,
            retention.notification_log_max,
            retention.notification_log_days,
            # Only the configured targets hold rows back: a removed target's cursor does not.
            targets=tuple(e.name for e in self.exporters),
            max_backlog=retention.max_backlog,
            max_backlog_age=retention.max_backlog_age,
        )
        while True:
            try:
                counts = await manager.purge(op)
                if any(counts.values()):
                    logger.info("retention purge removed {}", counts)
            except ProvsyncError as exc:
                logger.warning("retention purge failed: {}", exc)
            await asyncio.sleep(retention.purge_interval)

    async def _started(
        self, manager: AlarmManager, store: Store, host: str, snmp: SnmpService | None
    ) -> None:
        """Commit the agent-started event, saying whether this start is cold or warm
        (RFC 3418; agent.export.snmp.start_traps): the SNMP targets send coldStart or
        warmStart before it."""
        assert self.ring is not None, "the store step opens the key ring"
        digest = start_traps.config_digest(self.settings, host, self.ring.primary.line().encode())
        previous = await asyncio.to_thread(start_traps.recorded_digest, store.engine)
        kind = start_traps.start_kind(previous, digest)
        details: dict[str, object] = {"pid": os.getpid(), "store_id": store.identity}
        if snmp is not None:
            details.update(start_traps.ThisStart.of(snmp.engine_id, snmp.boots).details())
        details["start"] = kind
        await manager.emit_event(
            start_traps.STARTED_EVENT,
            host,
            text=f"provsync {__version__} started ({kind} start)",
            details=details,
        )
        # Recorded once the event is committed: a start that fails before it leaves the
        # previous digest, so the next start still compares with the last one announced.
        try:
            await asyncio.to_thread(start_traps.record_digest, store.engine, digest)
        except StoreError as exc:
            # Not worth failing the start for: the next one compares with an earlier start's
            # settings instead of this one's.
            logger.warning("{}", exc)
        logger.info("{} start", kind)

    async def run(self) -> None:
        """Run until a signal or a shutdown request; raises ProvsyncError on start-up errors."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        # Whatever the operator's umask: every file the agent (or a library) creates is
        # 0600, every directory 0700; the agent's own files already there are tightened.
        os.umask(PRIVATE_UMASK)
        try:
            secure_data_dir(self.settings.data_dir, agent_files(self.settings))
        except OSError as exc:
            raise ProvsyncError(
                f"data directory {self.settings.data_dir}: {exc.strerror or exc}"
            ) from None
        host = agent_hostname(self.settings)
        token = resolve_token(self.settings)
        element_token = resolve_element_token(self.settings)
        agent_log = self.settings.syslog.agent_log
        if agent_log.enabled:
            sink = SyslogSink(
                agent_log.address,
                self.settings.syslog.hostname or host,
                FACILITIES[self.settings.syslog.facility],
                max_size=self.settings.syslog.udp_max_message_size,
            )
            sink_id = logger.add(sink, level=agent_log.level, format="{message}")
            try:
                await self._run(host, token, element_token)
            finally:
                # A cluster member runs the lifecycle again when it leads again.
                logger.remove(sink_id)
        else:
            await self._run(host, token, element_token)

    async def _run(self, host: str, token: str, element_token: str) -> None:
        async with contextlib.AsyncExitStack() as stack:
            store = await stack.enter_async_context(self._store())
            manager = await stack.enter_async_context(self._manager(store))
            started_at = datetime.now(UTC)
            snmp = await stack.enter_async_context(self._snmp(manager, store, host, started_at))
            await stack.enter_async_context(self._exporters(manager, host, snmp))
            await self._started(manager, store, host, snmp)
            if self.on_lead is not None:
                await self.on_lead(manager, store)
            access = StoreAccess(store.engine)
            sync = await stack.enter_async_context(self._sync(manager, access))
            sharing = await stack.enter_async_context(self._sharing(manager, sync, store, access))
            services = Services(
                manager=manager,
                token=token,
                element_token=element_token,
                started_at=started_at,
                store_url=redact_url(store.url),
                store_id=store.identity,
                store_state=lambda: store.state.value,
                exporters=self.exporters,
                request_stop=self.request_stop,
                snmp=snmp,
                sync=sync,
                sharing=sharing,
                store=access,
                max_body=self.settings.api.max_body,
                max_batch=self.settings.api.max_batch,
                node=self.settings.agent.node_name,
                cluster=self.cluster_status,
            )
            purge = asyncio.create_task(self._purge_loop(manager), name="retention")
            try:
                await stack.enter_async_context(
                    serve_api(self.settings.api, services, self.settings.agent.shutdown_timeout)
                )
                logger.info(
                    "provsync {} running (pid {}, {} event loop)",
                    __version__,
                    os.getpid(),
                    self.loop_name,
                )
                gc.freeze()
                await self.stop_event.wait()
                logger.info("stopping")
            finally:
                purge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purge
                try:
                    await manager.emit_event(
                        "agent-stopping", host, text=f"provsync {__version__} stopping"
                    )
                except StoreError as exc:
                    logger.warning("could not record agent-stopping: {}", exc)
        logger.info("stopped")
        if self.failure is not None:
            raise self.failure
