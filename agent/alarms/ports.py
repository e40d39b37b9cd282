"""The two narrow faces of the alarm manager that other components see.

Exporters read the notification log (:class:`NotificationLog`); sync, sharing and the
exporters raise and clear their own alarms and emit events (:class:`AlarmSink`). Neither
hands out the store's engine or the operator's write methods (acknowledge, purge): a
component typed with these can only do what its face names. ``AlarmManager`` satisfies
both structurally, so app.py passes the one manager wherever either is wanted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agent.alarms.catalog import Catalog
from agent.alarms.feed import CommitFeedListener
from agent.alarms.records import AlarmChange, Notification
from agent.alarms.retention import Holding
from agent.alarms.severity import Severity

CommitListener = Callable[[int], None]
"""Called with the newest committed sequence number, from the writer thread."""


class NotificationLog(Protocol):
    """The committed notification log, as an exporter reads it."""

    @property
    def catalog(self) -> Catalog:
        """The alarm and event types (names, probable causes) a notice is built from."""
        ...

    @property
    def last_seq(self) -> int:
        """Highest committed sequence number."""
        ...

    def recent_after(self, seq: int, limit: int) -> list[Notification] | None:
        """Up to ``limit`` committed rows after ``seq`` from memory (no store read); None
        when memory does not reach back to ``seq + 1`` (call :meth:`read_stored`)."""
        ...

    def read_stored(self, seq: int, limit: int) -> list[Notification]:
        """Up to ``limit`` rows after ``seq`` from the store (blocking: run it in a
        thread); a gap in their sequence is what retention purged."""
        ...

    def first_cursor(self, name: str) -> int:
        """Export target ``name``'s committed position (blocking); a target seen for the
        first time starts below the oldest row the log holds, saved at once."""
        ...

    async def save_cursor(self, name: str, seq: int) -> None:
        """Commit ``name``'s delivered position in the writer's next group commit.

        Raises:
            StoreFencedError: the store is fenced (nothing is written).
            StoreError: the store could not commit it.
        """
        ...

    def hold(self, name: str, holding: Holding) -> None:
        """Announce the rows ``name`` holds in memory to deliver: retention keeps them."""
        ...

    def release(self, name: str) -> None:
        """``name`` holds nothing any more (stopped)."""
        ...

    def add_listener(self, listener: CommitListener) -> None:
        """``listener(last_seq)`` after each commit that changed the log or an alarm."""
        ...

    def add_commit_listener(self, listener: CommitFeedListener) -> None:
        """``listener(commit)`` with what each group commit changed (must not block)."""
        ...

    def check_writable(self) -> None:
        """Raises StoreFencedError when this agent must not act on what it read."""
        ...


class AlarmSink(Protocol):
    """Raising, clearing and asking about a component's own alarms; emitting events."""

    async def raise_alarm(
        self,
        type_id: str,
        resource: str,
        *,
        qualifier: str = "",
        severity: Severity | str | None = None,
        text: str = "",
        by: str | None = None,
        bounded: bool = False,
        resolution: str = "",
    ) -> AlarmChange:
        """Raise (or repeat, or change) the alarm with key (type, resource, qualifier);
        ``resolution`` replaces the type's hint on a new alarm."""
        ...

    async def clear(
        self,
        alarm_id: int | None = None,
        *,
        type_id: str | None = None,
        resource: str | None = None,
        qualifier: str = "",
        note: str | None = None,
        by: str | None = None,
        bounded: bool = False,
    ) -> AlarmChange:
        """Clear by id, or by key (type, resource, qualifier) for the active alarm.

        Raises:
            AlarmNotFound: no such (active) alarm.
        """
        ...

    async def emit_event(
        self,
        type_id: str,
        resource: str,
        *,
        severity: Severity | str | None = None,
        text: str = "",
        details: dict[str, Any] | None = None,
        bounded: bool = False,
    ) -> int:
        """Log a stateless event; returns its sequence number."""
        ...

    def is_active(self, type_id: str, resource: str, qualifier: str = "") -> bool:
        """Whether the alarm with that key is raised and not cleared."""
        ...

    def active_keys(self, type_id: str) -> list[tuple[str, str, str]]:
        """Keys of the active alarms of one type (a copy)."""
        ...


class ViewFeed(Protocol):
    """What the SNMP view follows: the catalog, each commit, and where its heartbeat
    event goes (the alarm manager on the leader; a standby's store follower,
    agent.cluster.follow, which records nothing)."""

    @property
    def catalog(self) -> Catalog: ...

    def add_commit_listener(self, listener: CommitFeedListener) -> None: ...

    async def emit_event(
        self,
        type_id: str,
        resource: str,
        *,
        severity: Severity | str | None = None,
        text: str = "",
        details: dict[str, Any] | None = None,
        bounded: bool = False,
    ) -> int: ...


class ExporterPorts(NotificationLog, AlarmSink, Protocol):
    """What an exporter is handed: the log it reads and the sink for its own alarms (the
    backlog alarm), in one object (the alarm manager)."""


__all__ = ["AlarmSink", "CommitListener", "ExporterPorts", "NotificationLog", "ViewFeed"]
