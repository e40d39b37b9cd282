"""Tables of the store. The store is the truth: exporters only read it.

Timestamps are stored as naive UTC and returned timezone-aware, so SQLite and PostgreSQL
behave alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, naive UTC on disk."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Meta(Base):
    """Store identity and counters that must never go backwards (alarm id, sequence)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Alarm(Base):
    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type_id: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(255))
    qualifier: Mapped[str] = mapped_column(String(255), default="")
    severity: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    cleared: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    raise_seq: Mapped[int] = mapped_column(BigInteger)
    operator_state: Mapped[str] = mapped_column(String(16), default="none")
    ack_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ack_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ack_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolution: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        # Identity of an active alarm: raising the same key again updates this row.
        Index(
            "uq_alarms_active_key",
            "type_id",
            "resource",
            "qualifier",
            unique=True,
            sqlite_where=cleared == false(),
            postgresql_where=cleared == false(),
        ),
        Index("ix_alarms_cleared_changed_at", "cleared", "changed_at"),
    )


class AlarmHistory(Base):
    __tablename__ = "alarm_history"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alarm_id: Mapped[int] = mapped_column(BigInteger, index=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    change: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Event(Base):
    __tablename__ = "events"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    type_id: Mapped[str] = mapped_column(String(64), index=True)
    resource: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[str] = mapped_column(Text, default="{}")


class Notification(Base):
    """The notification log: one row per alarm change or event, one monotonic sequence."""

    __tablename__ = "notification_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    alarm_id: Mapped[int] = mapped_column(BigInteger, default=0)
    type_id: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(255))
    qualifier: Mapped[str] = mapped_column(String(255), default="")
    severity: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    raise_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    payload: Mapped[str] = mapped_column(Text, default="{}")


class ExporterCursor(Base):
    """Last sequence number delivered to one export target."""

    __tablename__ = "exporter_cursors"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Element(Base):
    """A network element the agent synchronizes with. Credentials live apart."""

    __tablename__ = "elements"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(255))
    connector: Mapped[str] = mapped_column(String(64), default="http")
    interval: Mapped[int] = mapped_column(Integer, default=86400)
    """Seconds between scheduled incremental syncs; 0: none."""
    cron: Mapped[str] = mapped_column(String(128), default="")
    """A crontab expression (UTC) instead of the interval, when set."""
    sync_state: Mapped[str] = mapped_column(String(16), default="never")
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    epoch: Mapped[str] = mapped_column(String(64), default="")
    software_version: Mapped[str] = mapped_column(String(64), default="")
    agent_version: Mapped[str] = mapped_column(String(32), default="")
    """The agent's version at the last successful initialization."""
    last_init_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    remote_id: Mapped[str] = mapped_column(String(64), default="")
    """The id the element gives itself (Element API info), recorded at initialization."""
    sharing: Mapped[bool] = mapped_column(Boolean, default=False)
    """The element started sharing (flow-through provisioning) with the hub."""
    sharing_epoch: Mapped[str] = mapped_column(String(64), default="")
    """The element's data epoch at its last sync to the hub: the base belongs to it."""
    device_data: Mapped[bool] = mapped_column(Boolean, default=False)
    """The hub registered with the element for device-data notifications."""
    uses: Mapped[str] = mapped_column(Text, default="[]")
    """Messaging elements: JSON list of the network elements they are programmed with."""


class ElementCredentials(Base):
    """Username and password, each encrypted with the store key (agent.store.encryption)."""

    __tablename__ = "element_credentials"
    element_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text)
    password: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32), default="")
    """The store key that sealed both values; empty: still in the clear (encrypted on start)."""


class ElementObject(Base):
    """The hub's copy of one object of one element."""

    __tablename__ = "element_objects"
    element_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cls: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    element_id: Mapped[int] = mapped_column(Integer, index=True)
    element: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    counts: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SharedObject(Base):
    """The hub's shared provisioning data (one copy for the whole sharing group)."""

    __tablename__ = "shared_objects"
    cls: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    number: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    login: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    email: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    """Pairing fields of users: directory number first, then login id and e-mail."""
    origin: Mapped[str] = mapped_column(String(64), default="hub")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SharingBase(Base):
    """Per element, the value both sides agreed on last (the base of three-way compares)."""

    __tablename__ = "sharing_base"
    element_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cls: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[str] = mapped_column(Text)


class Conflict(Base):
    """A difference a sync from an element found that needs (or had) a decision."""

    __tablename__ = "conflicts"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    element_id: Mapped[int] = mapped_column(Integer, index=True)
    element: Mapped[str] = mapped_column(String(64))
    cls: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))
    hub_key: Mapped[str] = mapped_column(String(128))
    """The paired hub record's key (differs from ``key`` when paired by number/login/e-mail)."""
    category: Mapped[str] = mapped_column(String(16))
    """automatic, review or unresolved."""
    hub_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    element_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    """open or resolved."""
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Distribution(Base):
    """One shared update for one element: pending, inflight, done or error."""

    __tablename__ = "distributions"
    __table_args__ = (
        Index("ix_distributions_element_state", "element_id", "state", "id"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    element_id: Mapped[int] = mapped_column(Integer)
    element: Mapped[str] = mapped_column(String(64))
    cls: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))
    op: Mapped[str] = mapped_column(String(16))
    data: Mapped[str | None] = mapped_column(Text, nullable=True)
    origin: Mapped[str] = mapped_column(String(64), default="hub")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[bool] = mapped_column(Boolean, default=False)
    """The element rejected it; stays set through retries until it is applied."""
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeviceData(Base):
    """Phone details reported by elements the hub registered with for device data."""

    __tablename__ = "device_data"
    element_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ClusterMember(Base):
    """An agent of the store ([cluster]), leader or standby, and its last heartbeat.

    Written by each agent on a connection of its own that is not fenced: a member row says
    the agent lives, it is not the store's data."""

    __tablename__ = "cluster_members"
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    api_url: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


# Core tables for the hot paths (group commits, exporters' reads).
ALARMS = _table(Alarm)
HISTORY = _table(AlarmHistory)
EVENTS = _table(Event)
LOG = _table(Notification)
META = _table(Meta)
CURSORS = _table(ExporterCursor)
ELEMENTS = _table(Element)
CREDENTIALS = _table(ElementCredentials)
OBJECTS = _table(ElementObject)
JOBS = _table(Job)
SHARED = _table(SharedObject)
BASE = _table(SharingBase)
CONFLICTS = _table(Conflict)
DISTRIBUTIONS = _table(Distribution)
DEVICES = _table(DeviceData)
MEMBERS = _table(ClusterMember)
