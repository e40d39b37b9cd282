"""The members of a store's cluster: each agent's row, and who leads.

Every agent of a ``[cluster]`` writes its row of ``cluster_members`` (node, role, API
URL, pid, heartbeat) on an engine of its own, which no fence guards: the row says that
the agent lives, it is not the store's data, and a standby (which owns nothing) must be
able to write it too. Who leads is not what the rows say but who holds the store's
advisory lock (agent.store.server_lock): the ``owner`` token in ``meta`` names its host
and pid, and the leader writes its node name into ``meta`` (key ``leader_node``) through
its fenced engine once it holds the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError
from agent.store.models import MEMBERS, META
from agent.store.ownership import who
from agent.store.server_lock import LOCK_KEY, OWNER_KEY
from agent.store.upsert import upsert

LEADER_KEY = "leader_node"
"""``meta`` key: the node name of the agent that last took the lead."""

# A bigint advisory key shows in pg_locks as classid (high half) and objid (low half).
_LOCK_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = :high AND objid = :low AND objsubid = 1)"
)


@dataclass(frozen=True)
class Member:
    node: str
    role: str
    api_url: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime

    def age(self, now: datetime) -> float:
        """Seconds since the member's last heartbeat."""
        return max(0.0, (now - self.heartbeat_at).total_seconds())


@dataclass(frozen=True)
class ClusterView:
    """The members and the leader, as the store says at ``at``."""

    members: tuple[Member, ...]
    leader: str | None
    """The lock holder's node name; its host and pid when no member row matches it (an
    agent without [cluster]); None when nobody holds the lock."""
    leader_member: Member | None
    at: datetime

    def to_dict(self, member_timeout: float) -> dict[str, Any]:
        return {
            "leader": self.leader_dict(),
            "members": [
                {
                    "node": m.node,
                    "role": m.role,
                    "api_url": m.api_url,
                    "pid": m.pid,
                    "started_at": m.started_at.isoformat(),
                    "heartbeat_at": m.heartbeat_at.isoformat(),
                    "heartbeat_age": round(m.age(self.at), 1),
                    "leader": m is self.leader_member,
                    "gone": m.role != "stopped" and m.age(self.at) > member_timeout,
                }
                for m in self.members
            ],
        }

    def leader_dict(self) -> dict[str, Any] | None:
        if self.leader is None:
            return None
        member = self.leader_member
        return {
            "node": self.leader,
            "api_url": None if member is None else member.api_url,
            "pid": None if member is None else member.pid,
            "heartbeat_age": None if member is None else round(member.age(self.at), 1),
        }


def owner_pid(token: str | None) -> int | None:
    """The pid in an owner token ("host pid N uuid"), None when it has none."""
    _, found, pid = who(token).rpartition(" pid ")
    return int(pid) if found and pid.isdigit() else None


def write_member(engine: Engine, member: Member) -> None:
    """Insert or refresh ``member``'s row.

    Raises:
        StoreError: the store cannot be written now.
    """
    row = {
        "node": member.node,
        "role": member.role,
        "api_url": member.api_url,
        "pid": member.pid,
        "started_at": member.started_at,
        "heartbeat_at": member.heartbeat_at,
    }
    try:
        with engine.begin() as conn:
            upsert(conn, MEMBERS, [row], ["node"])
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot write the cluster member row of {member.node}: {exc}") from exc


def forget_member(engine: Engine, node: str, heartbeat_at: datetime) -> bool:
    """Delete ``node``'s row if its heartbeat is still ``heartbeat_at`` (a member that
    came back meanwhile stays); whether it was deleted.

    Raises:
        StoreError: the store cannot be written now.
    """
    try:
        with engine.begin() as conn:
            deleted = conn.execute(
                MEMBERS.delete().where(
                    MEMBERS.c.node == node, MEMBERS.c.heartbeat_at == heartbeat_at
                )
            )
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot delete the cluster member row of {node}: {exc}") from exc
    return bool(deleted.rowcount)


def read_view(engine: Engine) -> ClusterView:
    """The members and the lock holder (PostgreSQL).

    Raises:
        StoreError: the store cannot be read now.
    """
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(MEMBERS).order_by(MEMBERS.c.node)).all()
            meta = dict(
                conn.execute(
                    select(META.c.key, META.c.value).where(META.c.key.in_((OWNER_KEY, LEADER_KEY)))
                ).all()
            )
            held = bool(
                conn.execute(
                    _LOCK_HELD, {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF}
                ).scalar()
            )
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the cluster members: {exc}") from exc
    members = tuple(Member(**row._mapping) for row in rows)
    leader: str | None = None
    leader_member: Member | None = None
    if held:
        token = meta.get(OWNER_KEY)
        node, pid = meta.get(LEADER_KEY), owner_pid(token)
        leader_member = next((m for m in members if m.node == node and m.pid == pid), None)
        # No row matches while a new leader has the lock but not yet its name written, or
        # when the holder runs without [cluster]: the token still says which host and pid.
        leader = leader_member.node if leader_member is not None else who(token)
    return ClusterView(members, leader, leader_member, datetime.now(UTC))


__all__ = [
    "LEADER_KEY",
    "ClusterView",
    "Member",
    "forget_member",
    "owner_pid",
    "read_view",
    "write_member",
]
