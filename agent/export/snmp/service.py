"""The SNMP component of the agent: engine, command responder, notification targets.

Started after the alarm manager and stopped before it (see agent.app). The view follows
the manager's commit feed: the writer thread hands each group commit over (an inbox and
one wake-up of the event loop), and the loop applies it. The writer publishes a commit
before the callers of that commit hear back and ``call_soon_threadsafe`` runs callbacks
in order, so a poll right after an API call sees its change; a request that arrives
while commits wait in the inbox applies them first. The view reads the store only to be
built (at start, or after a commit it missed) and for the element table when a commit
changed elements or distributions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import Engine

from agent.alarms.feed import Commit
from agent.alarms.ports import ViewFeed
from agent.config import Settings
from agent.errors import ProvsyncError
from agent.export.snmp import responder, standard, vacm
from agent.export.snmp.counters import Counts
from agent.export.snmp.engine import add_user, create_engine, load_engine_state
from agent.export.snmp.fastpath import FastResponder
from agent.export.snmp.mibdata import MibData, SystemInfo
from agent.export.snmp.mibread import watch_elements
from agent.export.snmp.oids import MibOids
from agent.export.snmp.rate_limits import SenderBudget
from agent.export.snmp.v3auth import known_users
from agent.export.snmp.view import MibView
from agent.store.outage import ThrottledLog, is_store_outage
from agent.store.table_watch import TableWatch


class SnmpService:
    """The SNMP agent: its view, listeners, notification targets' engine and heartbeat.

    Args:
        settings: the whole settings (its [snmp] section, the exporters' pace).
        manager: the commit feed and the sink of the heartbeat event (the alarm
            manager; a standby's store follower).
        store: the store's engine, read only: the view is built from it and
            snmpEngineBoots counted in it.
        host: sysName; started_at: the agent's start (sysUpTime).
    """

    def __init__(
        self,
        settings: Settings,
        manager: ViewFeed,
        store: Engine,
        host: str,
        started_at: datetime,
        *,
        heartbeat: bool = True,
    ) -> None:
        self.settings = settings
        self.snmp = settings.snmp
        self.manager = manager
        self.store = store
        self.host = host
        self.oids = MibOids(self.snmp.root)
        self.started_at = started_at
        self.heartbeat = heartbeat and self.snmp.heartbeat_interval > 0
        """Emit the heartbeat event (the leader; a standby's view only shows the leader's)."""
        self.engine: Any = None
        self.engine_id = ""
        self.boots = 0
        self.counters: dict[str, int] = {}
        self.client_domains: set[tuple[int, ...]] = set()
        """pysnmp client transports opened for notification targets."""
        self.known_users = known_users(self.snmp.users)
        """The USM users with their authenticators, for the screens of both sockets."""
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._outages = ThrottledLog()
        self._inbox: deque[Commit] = deque()
        """Commits the writer published and the loop has not applied yet."""
        self._drain_queued = False
        """A drain of the inbox is queued on the loop (set by the writer thread)."""
        self._rebuild = True
        """The view must be built from the store (at start, or it missed a commit)."""
        self._building = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop
        """The loop the view lives on (set by start)."""
        self.watch: TableWatch | None = None
        communities = {c.name.get_secret_value().encode() for c in self.snmp.communities}
        self.fast = FastResponder(self.current_view, communities, allow_v1=self.snmp.allow_v1)
        self.counts = Counts([self.fast.counters, self.counters])
        """The standard counters (snmpInPkts ...), from every stage's counts."""
        self.sys_or = standard.SysOr(standard.capabilities(self.oids))
        self.data = MibData(
            store,
            manager.catalog,
            self.oids,
            SystemInfo(name=host, contact=self.snmp.sys_contact, location=self.snmp.sys_location),
            log_size=self.snmp.notification_log_size,
            started_at=started_at,
            standard=[
                self.sys_or.last_change,
                self.sys_or.table,
                standard.snmp_region(self.counts),
                standard.set_region(),
                standard.engine_region(self.counts),
                standard.mpd_region(self.counts),
                standard.usm_region(self.counts),
            ],
        )

    def uptime(self) -> int:
        """sysUpTime in hundredths of a second: the view's, so that notifications and
        polls (and sysORUpTime) share one clock."""
        return self.data.uptime_ticks()

    def current_view(self) -> MibView:
        """The view, with every commit published so far applied."""
        self._drain()
        if self.data.elements_stale() and not self._building:
            # Small table, read inline: a poll right after an element change (an API
            # call) sees it; the refresher reads it too, in a thread, for the others.
            try:
                self.data.set_elements(self.data.read_elements())
            except Exception as exc:
                if not is_store_outage(exc):
                    raise
                self._outages.warning("SNMP view: element table read failed", exc)
                self._wake.set()
        return self.data.view

    def _on_commit(self, commit: Commit) -> None:
        """Writer thread, after each group commit: hand it to the loop, never block."""
        if self._closed:
            return
        self._inbox.append(commit)
        if not self._drain_queued:
            # One wake-up for however many commits arrive before the loop gets to them;
            # the drain clears the flag before it reads the inbox, so none is left over.
            self._drain_queued = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody polls
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """On the loop: apply the published commits, in order."""
        self._drain_queued = False
        if self._rebuild or self._building:
            return  # the build replays the inbox once installed
        inbox = self._inbox
        while inbox:
            commit = inbox[0]
            if not self.data.apply_commit(commit):
                logger.warning(
                    "SNMP view missed commits {}..{}: building it again from the store",
                    self.data.seq + 1,
                    commit.first_seq - 1,
                )
                self._rebuild = True
                self._wake.set()
                return
            inbox.popleft()

    async def start(self) -> None:
        data_dir = self.settings.data_dir
        pen = self.snmp.root[6]
        self.engine_id, self.boots = await asyncio.to_thread(
            load_engine_state, data_dir, self.snmp.engine_id, pen, self.store
        )
        self.engine = create_engine(self.engine_id, self.boots)
        self.counts.attach(self.engine)
        # Every capability is registered once, now (sysORUpTime, sysORLastChange).
        self.sys_or.register(self.uptime())
        # Subscribe, then read: every commit after the read is in the inbox; the ones
        # before it in there too are applied again harmlessly (see MibData.read_full).
        self._loop = asyncio.get_running_loop()
        self.manager.add_commit_listener(self._on_commit)
        self.watch = self.data.watch = watch_elements(self.store)
        self.watch.add_listener(self._on_elements)
        await self._build()
        vacm.configure_views(self.engine, self.oids.root)
        standard.add_read_views(self.engine, vacm.READ_VIEW)
        for user in self.snmp.users:
            add_user(self.engine, user)
            vacm.grant(self.engine, user.name, user.level)
        responder.register_view(self.engine, self.current_view, self.counters)
        v3 = responder.V3Screen(self.known_users, bytes.fromhex(self.engine_id), SenderBudget())
        try:
            for index, address in enumerate(self.snmp.listen):
                responder.open_listener(
                    self.engine, address, index, self.fast.handle, self.counters, v3
                )
        except ProvsyncError:
            self.engine.close_dispatcher()
            raise
        self._tasks.append(asyncio.create_task(self._refresher(), name="snmp-view"))
        if self.heartbeat:
            self._tasks.append(asyncio.create_task(self._heartbeat(), name="snmp-heartbeat"))
        logger.info(
            "SNMP agent on {} (engine id {}, boots {})",
            ", ".join(self.snmp.listen),
            self.engine_id,
            self.boots,
        )

    def _on_elements(self, _generation: int) -> None:
        """Whichever thread committed an element change: wake the refresher."""
        if not self._closed:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        self._closed = True
        if self.watch is not None:
            self.watch.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.engine is not None:
            self.engine.close_dispatcher()

    async def _build(self) -> None:
        """Build the view from the store in a thread, install it, replay the inbox."""
        self._building = True
        try:
            snapshot = await asyncio.to_thread(self.data.read_full)
        finally:
            self._building = False
        self.data.install(snapshot)
        self._rebuild = False
        self._drain()

    async def _refresher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._rebuild:
                    await self._build()
                if self.data.elements_stale():
                    self.data.set_elements(await asyncio.to_thread(self.data.read_elements))
            except Exception as exc:
                # While the store is down every read fails alike: one line, not a
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
