"""The SNMP component of the agent: engine, command responder, notification targets.

Started after the alarm manager and stopped before it (see agent.app). The view is kept
current by a refresher woken on every commit; a request that arrives before the
refresher caught up brings the view up to date itself, so a poll right after an API
call sees its change.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

from loguru import logger

from agent.alarms.manager import AlarmManager
from agent.config import Settings
from agent.errors import ProvsyncError
from agent.export.snmp import responder, screen, vacm
from agent.export.snmp.engine import add_user, create_engine, load_engine_state
from agent.export.snmp.fastpath import FastResponder
from agent.export.snmp.mibdata import MibData, SystemInfo
from agent.export.snmp.oids import MibOids
from agent.export.snmp.v3auth import known_users
from agent.export.snmp.view import MibView
from agent.store.outage import ThrottledLog, is_store_outage

# A request brings the view up to date itself only for a small gap; a larger one is the
# refresher's (in a thread): a request must not stall the event loop for a rebuild.
INLINE_REFRESH_MAX = 2000


class SnmpService:
    def __init__(
        self, settings: Settings, manager: AlarmManager, host: str, started_at: datetime
    ) -> None:
        self.settings = settings
        self.snmp = settings.snmp
        self.manager = manager
        self.host = host
        self.oids = MibOids(self.snmp.root)
        self.started_at = started_at
        self.engine: Any = None
        self.engine_id = ""
        self.boots = 0
        self.counters: dict[str, int] = {}
        self.client_domains: set[tuple[int, ...]] = set()
        """pysnmp client transports opened for notification targets."""
        self.known_users = known_users(self.snmp.users)
        """The USM users with their authenticators, for the screens of both sockets."""
        self._boot = time.monotonic()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._outages = ThrottledLog()
        self.data = MibData(
            manager.engine,
            manager.catalog,
            self.oids,
            SystemInfo(name=host, contact=self.snmp.sys_contact, location=self.snmp.sys_location),
            log_size=self.snmp.notification_log_size,
            started_at=started_at,
        )
        communities = {c.name.get_secret_value().encode() for c in self.snmp.communities}
        self.fast = FastResponder(self.current_view, communities, allow_v1=self.snmp.allow_v1)

    def uptime(self) -> int:
        """sysUpTime in hundredths of a second."""
        return int((time.monotonic() - self._boot) * 100) & 0xFFFFFFFF

    def _extra(self) -> frozenset[int]:
        self.data.pending |= self.manager.take_repeats()
        return frozenset(self.data.pending)

    def current_view(self) -> MibView:
        behind = self.manager.last_seq - self.data.seq
        extra = self._extra()
        if behind <= INLINE_REFRESH_MAX and (behind > 0 or extra):
            # Rarely more than a few rows: the refresher normally got here first.
            for _ in range(3):
                changes = self.data.read_changes(self.manager.last_seq, extra)
                if self.data.apply(changes):
                    break
        elif behind > 0:
            self._wake.set()
        return self.data.view

    async def start(self) -> None:
        data_dir = self.settings.data_dir
        pen = self.snmp.root[6]
        self.engine_id, self.boots = await asyncio.to_thread(
            load_engine_state, data_dir, self.snmp.engine_id, pen, self.manager.engine
        )
        self.manager.track_repeats = True
        self.engine = create_engine(self.engine_id, self.boots)
        await self._refresh()
        vacm.configure_views(self.engine, self.oids.root)
        for user in self.snmp.users:
            add_user(self.engine, user)
            vacm.grant(self.engine, user.name, user.level)
        responder.register_view(self.engine, self.current_view)
        v3 = responder.V3Screen(
            self.known_users, bytes.fromhex(self.engine_id), screen.SenderBudget()
        )
        try:
            for index, address in enumerate(self.snmp.listen):
                responder.open_listener(
                    self.engine, address, index, self.fast.handle, self.counters, v3
                )
        except ProvsyncError:
            self.engine.close_dispatcher()
            raise
        loop = asyncio.get_running_loop()

        def _on_commit(_seq: int) -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.manager.add_listener(_on_commit)
        self._tasks.append(asyncio.create_task(self._refresher(), name="snmp-view"))
        if self.snmp.heartbeat_interval > 0:
            self._tasks.append(asyncio.create_task(self._heartbeat(), name="snmp-heartbeat"))
        logger.info(
            "SNMP agent on {} (engine id {}, boots {})",
            ", ".join(self.snmp.listen),
            self.engine_id,
            self.boots,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.engine is not None:
            self.engine.close_dispatcher()

    async def _refresh(self) -> None:
        for _ in range(3):
            extra = self._extra()
            changes = await asyncio.to_thread(self.data.read_changes, self.manager.last_seq, extra)
            if self.data.apply(changes):
                return

    async def _refresher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.data.seq < self.manager.last_seq or self.data.pending or self._extra():
                try:
                    await self._refresh()
                except Exception as exc:
                    # While the store is down every refresh fails alike: one line, not a
                    # traceback each time. Anything else is a bug and keeps its traceback.
                    if is_store_outage(exc):
                        self._outages.warning("SNMP view refresh: store read failed", exc)
                    else:
                        logger.exception("SNMP view refresh failed")
                    self._wake.set()  # still behind: try again after the pause
                    await asyncio.sleep(1)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.snmp.heartbeat_interval)
            try:
                await self.manager.emit_event(
                    "heartbeat",
                    self.host,
                    text="provsync heartbeat",
                    details={"active_alarms": len(self.data.alarms)},
                )
            except ProvsyncError as exc:
                logger.warning("heartbeat not recorded: {}", exc)
