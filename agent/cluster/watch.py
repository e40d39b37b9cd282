"""The leader's watch over the other members: an alarm for one that went silent.

Every ``heartbeat_interval`` the leader reads ``cluster_members``. A member that did not
stop (its last row does not say ``stopped``) and whose heartbeat is older than
``member_timeout`` raises ``cluster-member-lost`` (resource: its node name); its next
heartbeat, or its orderly stop, clears it. A member that is gone or stopped for longer
than ``forget_after`` is deleted from the table (and its alarm cleared): a host
decommissioned, or renamed, does not stay listed for ever.

The alarms are the leader's: a new leader starts from the alarms already active (the
store has them) and goes on from there, so a takeover neither repeats nor loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from loguru import logger
from sqlalchemy import Engine

from agent.alarms.ports import AlarmSink
from agent.errors import AlarmNotFound, ProvsyncError
from agent.store.members import ClusterView, Member, forget_member, read_view

MEMBER_LOST = "cluster-member-lost"
STOPPED = "stopped"


def lost_text(member: Member, age: float) -> str:
    return (
        f"cluster member {member.node} sent no heartbeat for {age:.0f} s (last "
        f"{member.heartbeat_at.isoformat(timespec='seconds')}, as {member.role}, pid "
        f"{member.pid}, {member.api_url or 'no API URL'})"
    )


class MemberWatch:
    """Raises and clears ``cluster-member-lost`` for the members other than ``node``.

    Args:
        engine: an engine that reads ``cluster_members`` (and deletes forgotten rows).
        sink: where the alarms go (the leader's alarm manager).
        node: this agent's node (never watched).
        timeout: seconds of silence that make a member lost.
        forget_after: seconds after which a gone or stopped member's row is deleted.
    """

    def __init__(
        self, engine: Engine, sink: AlarmSink, node: str, timeout: float, forget_after: float
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.node = node
        self.timeout = timeout
        self.forget_after = forget_after

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.check()
            except ProvsyncError as exc:
                # The store down: the agent's own outage handling says so; try again.
                logger.debug("cluster member watch: {}", exc)
            await asyncio.sleep(interval)

    async def check(self, now: datetime | None = None) -> None:
        view: ClusterView = await asyncio.to_thread(read_view, self.engine)
        at = now or datetime.now(UTC)
        active = {resource for _, resource, _ in self.sink.active_keys(MEMBER_LOST)}
        listed: set[str] = set()
        for member in view.members:
            if member.node == self.node:
                continue
            age = member.age(at)
            if age > self.forget_after and (member.role == STOPPED or age > self.timeout):
                await asyncio.to_thread(
                    forget_member, self.engine, member.node, member.heartbeat_at
                )
                logger.info(
                    "cluster member {} forgotten ({:.0f} s without a heartbeat)", member.node, age
                )
                continue
            listed.add(member.node)
            lost = member.role != STOPPED and age > self.timeout
            if lost and member.node not in active:
                await self.sink.raise_alarm(MEMBER_LOST, member.node, text=lost_text(member, age))
            elif not lost and member.node in active:
                why = "stopped" if member.role == STOPPED else "heartbeat again"
                await self._clear(member.node, f"{member.node}: {why}")
        for node in active - listed - {self.node}:
            await self._clear(node, f"{node}: no longer a member")
        if self.node in active:
            # This agent was lost to an earlier leader, and leads now.
            await self._clear(self.node, f"{self.node}: leads the store")

    async def _clear(self, node: str, note: str) -> None:
        with contextlib.suppress(AlarmNotFound):  # cleared meanwhile (by an operator)
            await self.sink.clear(type_id=MEMBER_LOST, resource=node, note=note)


__all__ = ["MEMBER_LOST", "MemberWatch", "lost_text"]
