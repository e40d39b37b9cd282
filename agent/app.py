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
and to sharing; sharing is attached to the sync engine as its element hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import uvicorn
from loguru import logger

from agent import __version__
from agent.alarms.catalog import AlarmType, Catalog
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import PurgeOp
from agent.api.app import Services
from agent.api.connections import guarded_protocol, resolve_http
from agent.api.fast_routes import create_asgi
from agent.clock import SYSTEM_CLOCK, Clock
from agent.config import Settings, read_token_file
from agent.connectors.registry import ConnectorFactory, connect
from agent.errors import ConfigError, ProvsyncError, StoreError, StoreLockedError
from agent.export.base import Exporter
from agent.export.jsonfile import FileExporter
from agent.export.snmp import start_traps
from agent.export.snmp.service import SnmpService
from agent.export.snmp.targets import SnmpTargetExporter
from agent.export.syslog.agentlog import SyslogSink
from agent.export.syslog.exporter import SyslogExporter, make_formatter
from agent.file_modes import PRIVATE_UMASK, secure_data_dir
from agent.kept_files import agent_files
from agent.listen import bind_socket
from agent.sharing.service import SharingService
from agent.store.access import StoreAccess
from agent.store.database import Store, redact_url
from agent.store.encryption import KeyRing, open_key_ring
from agent.sync.engine import SyncEngine
from agent.syslog_facilities import FACILITIES


def site_catalog(settings: Settings) -> Catalog:
    return Catalog(
        AlarmType(
            id=t.id,
            name=t.name,
            kind=t.kind,
            severity=t.severity,
            event_type=t.event_type,
            probable_cause=t.probable_cause,
            description=t.description,
            clear_instructions=t.clear_instructions,
            resolution=t.resolution,
            builtin=False,
        )
        for t in settings.alarm_types
    )


def resolve_token(settings: Settings) -> str:
    """The configured token, else the one in ``<data_dir>/api.token`` (made on first start)."""
    return _token(settings.api.token, settings.token_file, "an API")


def resolve_element_token(settings: Settings) -> str:
    """The elements' token: [sharing] element_token, else ``<data_dir>/element.token``."""
    return _token(settings.sharing.element_token, settings.element_token_file, "an element")


def _token(configured: str, path: Path, what: str) -> str:
    if configured:
        return configured
    existing = read_token_file(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    logger.info("generated {} token in {}", what, path)
    return token


def agent_hostname(settings: Settings) -> str:
    return settings.agent.hostname or socket.getfqdn()


def build_exporters(
    settings: Settings, manager: AlarmManager, host: str, snmp: SnmpService | None
) -> list[Exporter]:
    exporters: list[Exporter] = []
    for target in settings.exporters.file:
        path = settings.exporter_path(target.path)
        exporters.append(FileExporter(manager, settings.exporters, target, path, host))
    if settings.syslog.collectors:
        formatter = make_formatter(settings, host)
        for collector in settings.syslog.collectors:
            exporters.append(SyslogExporter(manager, settings.exporters, collector, formatter))
    if snmp is not None:
        for index, snmp_target in enumerate(settings.snmp.targets):
            exporters.append(
                SnmpTargetExporter(manager, settings.exporters, snmp_target, snmp, index)
            )
    return exporters


LoopChoice = Literal["auto", "uvloop", "asyncio"]


def loop_factory(choice: LoopChoice) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop ``[agent] event_loop`` names, and its factory.

    ``auto``: uvloop when it is installed (it is not on every platform), else the
    standard library's loop. Everything of the agent runs in that one loop: the control
    API, the SNMP listeners, the exporters' sockets; the writer thread hands results to
    it with ``call_soon_threadsafe``, which both loops provide.

    Raises:
        ConfigError: ``uvloop`` asked for and not installed.
    """
    if choice != "asyncio" and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return "uvloop", uvloop.new_event_loop
    if choice == "uvloop":
        raise ConfigError("[agent] event_loop is uvloop, which is not installed")
    return "asyncio", asyncio.new_event_loop


# Measured need: under a burst of API writes the collector's young-generation passes
# (every 700 allocations by default) ran thousands of times a second over a heap of
# live alarm rows, log-tail entries and view rows; 50,000 keeps them rare (a batch of
# 1,000 raises answered 7,000-8,800/s by default, 9,800-11,100/s so, same run). The
# objects made while starting are frozen (never scanned again) once the agent runs.
GC_THRESHOLD = (50_000, 20, 100)


def run_agent(settings: Settings) -> None:
    """Run the agent to its end in the event loop ``[agent] event_loop`` chooses."""
    gc.set_threshold(*GC_THRESHOLD)
    name, factory = loop_factory(settings.agent.event_loop)
    agent = Agent(settings, loop_name=name)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(agent.run())


class _ApiServer(uvicorn.Server):
    """uvicorn inside our event loop: the agent, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


class Agent:
    def __init__(
        self,
        settings: Settings,
        loop_name: str = "asyncio",
        *,
        clock: Clock = SYSTEM_CLOCK,
        connector_factory: ConnectorFactory = connect,
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

    def request_stop(self) -> None:
        self.stop_event.set()

    def _store_taken_over(self, message: str) -> None:
        # Another agent owns the store: this one's state is stale and it must never write
        # again, so it stops (systemd restarts it, and it is refused while the other runs).
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
        self, manager: AlarmManager, host: str, started_at: datetime
    ) -> AsyncIterator[SnmpService | None]:
        if not self.settings.snmp.enabled:
            yield None
            return
        service = SnmpService(self.settings, manager, host, started_at)
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
            clock=self.clock.now,
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

    @contextlib.asynccontextmanager
    async def _api(self, services: Services) -> AsyncIterator[None]:
        api = self.settings.api
        sock = bind_socket(api.host, api.port)
        # The agent routes stdlib logging into loguru at level 0, so uvicorn thinks TRACE
        # is wanted: it would wrap the app in its message logger and build a log record
        # for each ASGI message of every request, only for loguru to drop them.
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.setLevel(max(uvicorn_log.getEffectiveLevel(), logging.DEBUG))
        http = resolve_http(api.http)
        config = uvicorn.Config(
            create_asgi(services),
            log_config=None,
            access_log=False,
            lifespan="off",
            http=guarded_protocol(api.header_timeout, api.max_connections, http),
        )
        server = _ApiServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="control-api")
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no started event
            await asyncio.sleep(0.02)
        if task.done():
            sock.close()
            task.result()
            raise ProvsyncError("control API stopped while starting")
        logger.info("control API on http://{}:{} ({})", api.host, api.port, http)
        try:
            yield
        finally:
            server.should_exit = True
            try:
                await asyncio.wait_for(task, self.settings.agent.shutdown_timeout)
            except TimeoutError:
                task.cancel()
            sock.close()

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
            loop.add_signal_handler(sig, self.stop_event.set)
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
            logger.add(sink, level=agent_log.level, format="{message}")
        async with contextlib.AsyncExitStack() as stack:
            store = await stack.enter_async_context(self._store())
            manager = await stack.enter_async_context(self._manager(store))
            started_at = datetime.now(UTC)
            snmp = await stack.enter_async_context(self._snmp(manager, host, started_at))
            await stack.enter_async_context(self._exporters(manager, host, snmp))
            await self._started(manager, store, host, snmp)
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
            )
            purge = asyncio.create_task(self._purge_loop(manager), name="retention")
            try:
                await stack.enter_async_context(self._api(services))
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
