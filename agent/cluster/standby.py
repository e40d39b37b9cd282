"""A [cluster] member's life: stand by until the store's lock is free, lead, stand by again.

The lock is the election, as for a single agent (agent.store.ownership): a standby tries
it every ``poll_interval`` on a connection of its own and lets it go at once; when it got
it, it runs the agent's whole lifecycle (agent.app.Agent: store, manager, SNMP, exporters,
... API), whose store takes the lock again (another standby may win that race: this one
stands by again). The exporters continue from their saved cursors, so nothing committed is
lost; what a dead leader delivered after its last cursor save is delivered again.

While it stands by, a member serves its control API by relaying to the leader
(agent.cluster.forward) and SNMP polls with a view that follows the store
(agent.cluster.follow); while it leads, it watches the other members
(agent.cluster.watch).

A leader whose store another agent took (fenced, then lost: ``StoreLockedError``) stops its
components as on any stop, and stands by instead of exiting. SIGTERM, SIGINT or
``POST /api/v1/shutdown`` stop either role.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from loguru import logger
from sqlalchemy.engine import make_url

from agent import __version__
from agent.alarms.manager import AlarmManager
from agent.api.standby import serve_standby_api, standby_app
from agent.app import GC_THRESHOLD, Agent
from agent.cluster.follow import StoreFollower
from agent.cluster.forward import LeaderRelay
from agent.cluster.members import LEADER, STANDBY, Heartbeat
from agent.cluster.watch import MemberWatch
from agent.config import Settings
from agent.errors import StoreError, StoreLockedError
from agent.export.snmp.service import SnmpService
from agent.store.database import Store, create_store_engine, normalize_url, redact_url
from agent.store.members import LEADER_KEY, ClusterView, read_view
from agent.store.meta import Meta
from agent.store.server_lock import ServerLock, failure_reason
from agent.wiring import (
    agent_hostname,
    loop_factory,
    resolve_element_token,
    resolve_token,
    site_catalog,
)

LEADERSHIP_TAKEN = "leadership-taken"


def run_cluster_agent(settings: Settings) -> None:
    """Run a [cluster] member to its end (agent.app.run_agent, around a standby loop)."""
    gc.set_threshold(*GC_THRESHOLD)
    name, factory = loop_factory(settings.agent.event_loop)
    member = ClusterMember(settings, loop_name=name)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(member.run())


class ClusterMember:
    def __init__(self, settings: Settings, loop_name: str = "asyncio") -> None:
        self.settings = settings
        self.loop_name = loop_name
        self.node = settings.agent.node_name
        self.url = normalize_url(settings.store_url)
        self.name = redact_url(self.url)
        self.stop_event = asyncio.Event()
        # Its own engine, never fenced: heartbeats and the cluster's view (agent.store.members).
        self.engine = create_store_engine(self.url, server_timeout=settings.store.server_timeout)
        self.heartbeat = Heartbeat(self.engine, settings)
        self._beating = False
        self._view: ClusterView | None = None
        self._watch: asyncio.Task[None] | None = None
        """The leader's watch over the other members (while this agent leads)."""

    def request_stop(self) -> None:
        self.stop_event.set()

    def _signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    def _beat(self, role: str) -> None:
        self.heartbeat.role = role
        if not self._beating:
            self._beating = True
            self.heartbeat.start()

    async def run(self) -> None:
        """Stand by and lead in turn until a stop is asked; raises what a plain agent's
        start raises (a store that cannot be opened, a port in use...)."""
        self._signals()
        try:
            while await self._stand_by():
                agent = Agent(
                    self.settings,
                    loop_name=self.loop_name,
                    on_lead=self._took_lead,
                    cluster_status=self._cluster_status,
                )
                try:
                    await agent.run()
                except StoreLockedError as exc:
                    await self._stop_watch()
                    # Another agent owns the store: it won the lock first, or took it while
                    # this one had lost its connection. Both mean: stand by.
                    self._signals()
                    if agent.stop_requested:
                        break
                    logger.warning("standing by: {}", exc)
                    continue
                # A stop asked for (signal or API), or a normal end.
                break
        finally:
            await self._stop_watch()
            if self._beating:
                await self.heartbeat.stop()
            await asyncio.to_thread(self.engine.dispose)
        logger.info("cluster member {} stopped", self.node)

    # ------------------------------------------------------------------ standby
    def _try_lock(self, lock: ServerLock) -> bool:
        """Whether the lock is free now (taken and let go at once)."""
        try:
            return lock.try_lock()
        except (psycopg.Error, OSError) as exc:
            logger.debug("store {}: lock not tried: {}", self.name, failure_reason(exc))
            return False
        finally:
            lock.close()

    async def _stand_by(self) -> bool:
        """Until the lock is free (True) or a stop is asked (False), as a standby."""
        lock = ServerLock(make_url(self.url), self.settings.store.server_timeout)
        if await asyncio.to_thread(self._try_lock, lock):
            return not self.stop_event.is_set()
        self._beat(STANDBY)
        settings = self.settings
        relay = LeaderRelay(
            self.node, self._leader_url, settings.api.max_body, settings.api.max_connections
        )
        app = standby_app(
            resolve_token(settings),
            resolve_element_token(settings),
            self._standby_status,
            relay,
            self.request_stop,
            settings.api.max_body,
        )
        leader: str | None = None
        try:
            async with (
                self._standby_snmp(),
                serve_standby_api(settings.api, app, settings.agent.shutdown_timeout),
            ):
                while not self.stop_event.is_set():
                    await self._refresh_view()
                    seen = self._view.leader if self._view is not None else None
                    if seen != leader and seen is not None:
                        logger.info("standby: {} leads the store", seen)
                    leader = seen or leader
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self.stop_event.wait(), settings.cluster.poll_interval
                        )
                    if self.stop_event.is_set():
                        break
                    if await asyncio.to_thread(self._try_lock, lock):
                        logger.info("standby: the store's lock is free; taking the lead")
                        return True
        finally:
            await relay.aclose()
        return False

    @contextlib.asynccontextmanager
    async def _standby_snmp(self) -> AsyncIterator[None]:
        """The SNMP agent on a standby: the same view as the leader's, read from the
        store (agent.cluster.follow); no notifications, no heartbeat event."""
        settings = self.settings
        if not settings.snmp.enabled:
            yield
            return
        follower = StoreFollower(
            self.engine, site_catalog(settings), settings.cluster.poll_interval
        )
        await follower.start()
        service = SnmpService(
            settings,
            follower,
            self.engine,
            agent_hostname(settings),
            datetime.now(UTC),
            heartbeat=False,
        )
        try:
            await service.start()
            watch = service.watch
            if watch is not None:
                follower.add_tick(watch.touch)
            yield
        finally:
            await follower.stop()
            await service.stop()

    async def _refresh_view(self) -> None:
        try:
            self._view = await asyncio.to_thread(read_view, self.engine)
        except StoreError as exc:
            logger.debug("cluster view not read: {}", exc)

    def _cluster_status(self) -> dict[str, Any]:
        """For the leader's status route (in a thread)."""
        view = read_view(self.engine)
        return view.to_dict(self.settings.cluster.member_timeout)

    async def _standby_status(self) -> dict[str, Any]:
        await self._refresh_view()
        view = self._view
        document: dict[str, Any] = {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.heartbeat.started_at.isoformat(),
            "store": self.name,
            "node": self.node,
            "role": STANDBY,
            "leader": None,
            "members": [],
        }
        if view is not None:
            document.update(view.to_dict(self.settings.cluster.member_timeout))
        return document

    def _leader_url(self) -> str | None:
        """The leader's API URL, when a live member other than this one leads."""
        view = self._view
        leading = None if view is None else view.leader_member
        if leading is None or leading.node == self.node or not leading.api_url:
            return None
        if leading.age(datetime.now(UTC)) > self.settings.cluster.member_timeout:
            return None
        return leading.api_url

    # ------------------------------------------------------------------ leader
    async def _stop_watch(self) -> None:
        task, self._watch = self._watch, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # the agent's manager stopped under it: a bug, kept in the log
                logger.exception("cluster member watch failed")

    async def _took_lead(self, manager: AlarmManager, store: Store) -> None:
        """The store is ours: say so in ``meta`` (a fenced write) and to the NMSs."""
        meta = Meta(store.engine)
        previous = await asyncio.to_thread(meta.get, LEADER_KEY)
        await asyncio.to_thread(meta.set, LEADER_KEY, self.node)
        self._beat(LEADER)
        cluster = self.settings.cluster
        watch = MemberWatch(
            self.engine, manager, self.node, cluster.member_timeout, cluster.forget_after
        )
        self._watch = asyncio.create_task(
            watch.run(cluster.heartbeat_interval), name="cluster-member-watch"
        )
        text = f"{self.node} leads the store (previous: {previous or 'none'})"
        await manager.emit_event(
            LEADERSHIP_TAKEN,
            self.node,
            text=text,
            details={
                "node": self.node,
                "previous": previous,
                "pid": os.getpid(),
                "at": datetime.now(UTC).isoformat(),
            },
        )
        logger.info("{}", text)


__all__ = ["LEADERSHIP_TAKEN", "ClusterMember", "run_cluster_agent"]
