"""This agent's row of ``cluster_members``, refreshed every ``heartbeat_interval``.

On an engine of its own, never fenced (agent.store.members): a standby owns nothing and a
fenced leader is still alive; the row says so. A failed write is logged once until one
succeeds again: the heartbeat must not flood the log while the store is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime

from loguru import logger
from sqlalchemy import Engine

from agent.config import Settings
from agent.errors import StoreError
from agent.store.members import Member, write_member

LEADER = "leader"
STANDBY = "standby"
STOPPED = "stopped"


def advertised_api_url(settings: Settings) -> str:
    """Where the other members and operators reach this agent's control API."""
    host, port = settings.api.host, settings.api.port
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - a wildcard bind: name the node instead
        host = settings.agent.node_name
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Heartbeat:
    """Writes the member row now and every ``interval``, with the role of the moment."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._interval = settings.cluster.heartbeat_interval
        self.node = settings.agent.node_name
        self.api_url = advertised_api_url(settings)
        self.started_at = datetime.now(UTC)
        self._role = STANDBY
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def role(self) -> str:
        return self._role

    @role.setter
    def role(self, role: str) -> None:
        """A new role is written at once, not at the next beat."""
        self._role = role
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._role = STOPPED
        await self.beat()

    async def beat(self) -> None:
        member = Member(
            self.node, self._role, self.api_url, os.getpid(), self.started_at, datetime.now(UTC)
        )
        try:
            await asyncio.to_thread(write_member, self._engine, member)
        except StoreError as exc:
            if not self._failing:
                logger.warning("cluster heartbeat not written: {}", exc)
            self._failing = True
            return
        if self._failing:
            logger.info("cluster heartbeat written again")
        self._failing = False

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            await self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)


__all__ = ["LEADER", "STANDBY", "STOPPED", "Heartbeat", "advertised_api_url"]
