"""The alarm manager: raise, change, clear, acknowledge alarms and emit events.

Every change and its notification-log row commit in the same transaction (the store is
the truth; exporters read the log after commit). One writer thread applies queued
requests in group commits: it drains whatever is queued (up to ``batch_max``), applies it
to an in-memory working set loaded with two queries, and writes the result with a few
``executemany`` statements. A caller's request is acknowledged only after its commit.

Because the writer is the only process-wide writer of these tables (the store lock keeps
other agents out), it assigns alarm ids and sequence numbers itself: they are strictly
increasing, never reused (the high-water marks live in ``meta``) and gap-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from loguru import logger
from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, select
from sqlalchemy.exc import DBAPIError

from agent.alarms.active import ActiveKeys
from agent.alarms.catalog import AlarmType, Catalog, Kind
from agent.alarms.feed import Commit, CommitFeedListener, LogTail
from agent.alarms.operations import (
    AckOp,
    ClearOp,
    CursorOp,
    EventOp,
    Operation,
    PurgeOp,
    RaiseOp,
)
from agent.alarms.records import ALARM_FIELDS, AlarmChange, Notification, NotificationKind
from agent.alarms.retention import (
    Holding,
    Loss,
    find_losses,
    held_spans,
    purgeable,
    read_cursors,
)
from agent.alarms.severity import Severity
from agent.errors import (
    AlarmNotFound,
    InvalidRequest,
    OverloadedError,
    ProvsyncError,
    StoreError,
    StoreFencedError,
)
from agent.store.models import ALARMS as _ALARMS
from agent.store.models import CURSORS as _CURSORS
from agent.store.models import EVENTS as _EVENTS
from agent.store.models import HISTORY as _HISTORY
from agent.store.models import LOG as _LOG
from agent.store.models import META as _META
from agent.store.outage import ThrottledLog, is_store_outage
from agent.store.rawsql import RawWriter

Clock = Callable[[], datetime]
CommitListener = Callable[[int], None]

_MUTABLE = tuple(f for f in ALARM_FIELDS if f not in {"id", "type_id", "resource", "qualifier"})
_ALARM_STAMPS = frozenset({"raised_at", "last_raised_at", "changed_at", "cleared_at", "ack_at"})
_AT = frozenset({"at"})
_HISTORY_FIELDS = ("alarm_id", "seq", "at", "change", "severity", "text", "by", "note")
_EVENT_FIELDS = ("seq", "at", "type_id", "resource", "severity", "text", "details")
_LOG_FIELDS = (
    "seq",
    "at",
    "kind",
    "alarm_id",
    "type_id",
    "resource",
    "qualifier",
    "severity",
    "text",
    "raise_seq",
    "payload",
)
_CURSOR_FIELDS = ("name", "last_seq", "updated_at")
_UPDATED_AT = frozenset({"updated_at"})
_META_FIELDS = ("key", "value")
# Built once: constructing a select per group commit cost more than running it.
_BY_IDS = select(*[_ALARMS.c[f] for f in ALARM_FIELDS]).where(
    _ALARMS.c.id.in_(bindparam("ids", expanding=True))
)
_STOP = object()
MAX_FIELD = 255
MAX_TEXT = 4096
# One search instead of a generator over the characters: checked on the event loop for
# every request's resource and qualifier.
_CONTROL = re.compile(r"[\x00-\x1f]")


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Reply:
    """Where a request's result goes: a thread-safe Future, or an asyncio future + loop."""

    __slots__ = ("future", "loop")

    def __init__(
        self,
        future: Future[Any] | asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.future = future
        self.loop = loop

    def claim(self) -> bool:
        """False when a thread-safe caller cancelled before the write began."""
        if isinstance(self.future, Future):
            return self.future.set_running_or_notify_cancel()
        return True

    def reclaimed(self) -> _Reply:
        """The same reply, already claimed: for a retry that must not claim again."""
        return _ClaimedReply(self.future, self.loop)


class _ClaimedReply(_Reply):
    __slots__ = ()

    def claim(self) -> bool:
        return True


def _settle(future: Future[Any] | asyncio.Future[Any], result: Any) -> None:
    if future.done():
        return  # an asyncio caller gave up waiting; the change is committed anyway
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _settle_all(items: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in items:
        _settle(future, result)


def _deliver(replies: list[tuple[_Reply, Any]]) -> None:
    """Resolve callers; one wake-up per event loop per batch, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for reply, result in replies:
        if reply.loop is None:
            _settle(reply.future, result)
        else:
            by_loop.setdefault(reply.loop, []).append((reply.future, result))  # type: ignore[arg-type]
    for loop, items in by_loop.items():
        # RuntimeError: that loop is closed, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, items)


@dataclass
class _Batch:
    """The working set of one group commit."""

    by_id: dict[int, dict[str, Any]] = field(default_factory=dict)
    active_by_key: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    new_ids: set[int] = field(default_factory=set)
    repeated: set[int] = field(default_factory=set)
    dirty_ids: set[int] = field(default_factory=set)
    history: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Notification] = field(default_factory=list)
    """The log rows as exporters read them, for the commit feed and the log tail."""
    cursors: dict[str, int] = field(default_factory=dict)
    """Export target -> the newest position queued for it in this group commit."""
    purged: set[int] = field(default_factory=set)
    purged_through: int = 0
    """The highest log seq a purge deleted (0: none): the tail drops rows up to it."""

    def track(self, row: dict[str, Any]) -> None:
        self.by_id[row["id"]] = row
        if not row["cleared"]:
            self.active_by_key[(row["type_id"], row["resource"], row["qualifier"])] = row


class AlarmManager:
    """Stateful alarms and stateless events over the store.

    Args:
        engine: the store's engine (already migrated).
        catalog: built-in and site alarm types.
        batch_max: most requests committed together.
        clock: returns aware UTC datetimes (injected by tests).
        pending_max: most requests waiting for the writer (queued or in the group commit
            being written) before a ``bounded`` request is refused with OverloadedError;
            0: no bound. Requests that are not bounded (the agent's own) always wait.
        write_guard: called before each group commit; raises (StoreFencedError) when the
            store must not be written now, so requests fail at once with its reason.
        tail_size: log rows kept in memory after their commit (``tail``), for exporters
            that are nearly caught up; about 600 bytes a row, so 16,384 (some 10 MB, a
            few seconds of the fastest commit rate, many batches) rather than more: a
            target further behind reads the store, as after a restart.
    """

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        *,
        batch_max: int = 512,
        clock: Clock = utc_now,
        pending_max: int = 0,
        write_guard: Callable[[], None] | None = None,
        tail_size: int = 16_384,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self._batch_max = batch_max
        self._clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending_max = pending_max
        self._write_guard = write_guard
        # Export target -> the log rows it has read (or is reading) and holds in memory to
        # deliver: retention keeps them while held, as a restart resumes from the committed
        # cursor. Written by exporters on the loop, read by the writer thread (one
        # assignment of a frozen value at a time).
        self.holdings: dict[str, Holding] = {}
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.refused = 0
        """Bounded requests refused with OverloadedError since the start."""
        self._failures = ThrottledLog()
        self._thread: threading.Thread | None = None
        self._listeners: list[CommitListener] = []
        self._feed: list[CommitFeedListener] = []
        self.tail = LogTail(tail_size)
        """The newest committed log rows: exporters read here, the store only past it."""
        self._last_seq = 0
        self._last_alarm_id = 0
        self._committed_seq = 0
        self._counters_stale = False
        """Set by a failed commit: it may have reached the store although its answer was
        lost, or the store was fenced; the next write reloads the counters first."""
        self._dialect = engine.dialect.name
        self._raw = RawWriter(engine.dialect)
        # Payload JSON and the same payload parsed (for the feed), memoized: few distinct.
        self._payloads: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        # Type id -> the payload JSON's fixed start, up to the count (see _payload).
        self._payload_heads: dict[str, str] = {}
        self._active = ActiveKeys()
        """Key -> id of every active alarm; the writer is the only one changing them."""
        self._conn: Connection | None = None
        """The writer's connection, kept checked out between group commits (see
        ``_connection``); only the writer thread uses it."""
        self._committing = False
        """Set while the group commit's COMMIT (and the engine's commit event) runs: a
        failure from then on may have committed, one before cannot have."""

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._load_counters()
        self._thread = threading.Thread(target=self._run, name="alarm-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def add_listener(self, listener: CommitListener) -> None:
        """``listener(last_seq)`` is called from the writer thread after each commit that
        changed an alarm, the log or a purge (not after one that only saved cursors)."""
        self._listeners.append(listener)

    def add_commit_listener(self, listener: CommitFeedListener) -> None:
        """``listener(commit)`` is called from the writer thread after each group commit
        that changed something (log rows, alarms, a purge), with what it changed.

        It runs before the callers of that commit hear back, after ``last_seq`` and
        ``tail`` include the commit: a client told its change is committed, and asking
        next (over SNMP, say), finds it wherever the listener put it. It must not block.
        """
        self._feed.append(listener)

    def check_writable(self) -> None:
        """Ask the write guard whether this agent may write the store now; readers that
        act for the agent (exporters) ask it before acting on what they read.

        Raises:
            StoreFencedError: the store is fenced (another agent owns it).
        """
        if self._write_guard is not None:
            self._write_guard()

    def is_active(self, type_id: str, resource: str, qualifier: str = "") -> bool:
        return (type_id, resource, qualifier) in self._active

    def active_keys(self, type_id: str) -> list[tuple[str, str, str]]:
        """Keys of the active alarms of one type (a copy: the writer thread changes them)."""
        return self._active.keys_of(type_id)

    @property
    def last_seq(self) -> int:
        """Highest committed sequence number."""
        return self._committed_seq

    def _load_counters(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_META.c.key, _META.c.value))
            meta = {key: value for key, value in rows}  # noqa: C416 - result has .keys()
            max_seq = conn.execute(select(func.max(_LOG.c.seq))).scalar() or 0
            max_event = conn.execute(select(func.max(_EVENTS.c.seq))).scalar() or 0
            max_alarm = conn.execute(select(func.max(_ALARMS.c.id))).scalar() or 0
            active = conn.execute(
                select(
                    _ALARMS.c.type_id, _ALARMS.c.resource, _ALARMS.c.qualifier, _ALARMS.c.id
                ).where(_ALARMS.c.cleared.is_(False))
            )
            self._active = ActiveKeys((t, r, q, i) for t, r, q, i in active)
        self._last_seq = max(int(meta.get("last_seq", 0)), max_seq, max_event)
        self._last_alarm_id = max(int(meta.get("last_alarm_id", 0)), max_alarm)
        self._committed_seq = self._last_seq

    @property
    def pending(self) -> int:
        """Requests queued or being written (not yet answered); exporters' cursor saves
        are not counted."""
        return self._pending

    @property
    def pending_max(self) -> int:
        """The bound on ``pending`` for bounded requests (0: none)."""
        return self._pending_max

    # ----------------------------------------------------------------- public API
    def submit(self, op: Operation, *, bounded: bool = False) -> Future[Any]:
        """Queue ``op``; the future resolves after its commit (thread-safe).

        Raises:
            OverloadedError: ``bounded`` and ``pending_max`` requests already wait.
        """
        if self._thread is None:
            raise StoreError("the alarm manager is not running")
        future: Future[Any] = Future()
        self._enqueue(op, _Reply(future), bounded)
        return future

    def submit_many(self, ops: Sequence[Operation]) -> list[asyncio.Future[Any]]:
        """Queue ``ops`` in order from the event loop (not bounded: the caller checked the
        writer's bound for all of them); each future resolves after its operation's
        commit. Asyncio futures, not ``submit``'s thread-safe ones (a lock and a condition
        each): the writer settles all those of a group commit with one wake-up of the loop.

        Raises:
            StoreError: the manager is not running.
        """
        if self._thread is None:
            raise StoreError("the alarm manager is not running")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for op in ops:
            future: asyncio.Future[Any] = loop.create_future()
            self._enqueue(op, _Reply(future, loop), False)
            futures.append(future)
        return futures

    async def _call(self, op: Operation, bounded: bool = False) -> Any:
        if self._thread is None:
            raise StoreError("the alarm manager is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._enqueue(op, _Reply(future, loop), bounded)
        return await future

    def _enqueue(self, op: Operation, reply: _Reply, bounded: bool) -> None:
        if self._write_guard is not None:
            # Fenced: refused at once, not after the writer gets to it. A group commit
            # still in flight when the store hung (an exporter's cursor save, say) would
            # otherwise hold it, and answer it only once the lock is back. The guard is
            # asked again before each group commit.
            try:
                self._write_guard()
            except StoreFencedError as exc:
                _settle(reply.future, StoreFencedError(str(exc)))
                return
        if isinstance(op, CursorOp):
            # Not counted as a request waiting: at most one per export target, and one
            # row per target in the group commit, it takes nothing from the API's bound.
            self._queue.put((op, reply))
            return
        # Refused before it is queued, so a refusal costs nothing and changes nothing;
        # the count includes the batch being written, which is what a new request waits for.
        with self._pending_lock:
            if bounded and self._pending_max and self._pending >= self._pending_max:
                self.refused += 1
                raise OverloadedError(
                    f"the alarm writer has {self._pending} requests waiting (bound "
                    f"{self._pending_max}); retry later"
                )
            self._pending += 1
        self._queue.put((op, reply))

    def _answered(self, count: int) -> None:
        with self._pending_lock:
            self._pending -= count

    def make_raise(
        self,
        type_id: str,
        resource: str,
        *,
        qualifier: str = "",
        severity: Severity | str | None = None,
        text: str = "",
        by: str | None = None,
    ) -> RaiseOp:
        alarm_type = self._alarm_type(type_id, Kind.ALARM)
        chosen = Severity(severity) if severity is not None else alarm_type.severity
        if chosen is Severity.CLEARED:
            raise InvalidRequest("cannot raise with severity 'cleared'; clear the alarm instead")
        return RaiseOp(
            type_id,
            _field("resource", resource),
            _field("qualifier", qualifier, allow_empty=True),
            chosen,
            _text(text),
            by,
        )

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
    ) -> AlarmChange:
        """Raise (or repeat, or change) the alarm with key (type, resource, qualifier).

        ``bounded``: refuse with OverloadedError when the writer is full (the API's
        requests); the agent's own wait.
        """
        op = self.make_raise(
            type_id, resource, qualifier=qualifier, severity=severity, text=text, by=by
        )
        result: AlarmChange = await self._call(op, bounded)
        return result

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
        """Clear by id, or by key (type, resource, qualifier) for the active alarm."""
        if alarm_id is not None:
            op = ClearOp(alarm_id, None, note, by)
        elif type_id is not None and resource is not None:
            self._alarm_type(type_id, Kind.ALARM)
            op = ClearOp(None, (type_id, resource, qualifier), note, by)
        else:
            raise InvalidRequest("clear needs an alarm id, or a type and a resource")
        result: AlarmChange = await self._call(op, bounded)
        return result

    async def acknowledge(
        self,
        alarm_id: int,
        *,
        acknowledge: bool = True,
        note: str | None = None,
        by: str | None,
        bounded: bool = False,
    ) -> AlarmChange:
        result: AlarmChange = await self._call(AckOp(alarm_id, acknowledge, note, by), bounded)
        return result

    def make_event(
        self,
        type_id: str,
        resource: str,
        *,
        severity: Severity | str | None = None,
        text: str = "",
        details: dict[str, Any] | None = None,
    ) -> EventOp:
        event_type = self._alarm_type(type_id, Kind.EVENT)
        chosen = Severity(severity) if severity is not None else event_type.severity
        if chosen is Severity.CLEARED:
            raise InvalidRequest("an event cannot have severity 'cleared'")
        return EventOp(type_id, _field("resource", resource), chosen, _text(text), details or {})

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
        op = self.make_event(type_id, resource, severity=severity, text=text, details=details)
        seq: int = await self._call(op, bounded)
        return seq

    async def purge(self, op: PurgeOp) -> dict[str, int]:
        counts: dict[str, int] = await self._call(op)
        return counts

    async def save_cursor(self, name: str, seq: int) -> None:
        """Commit export target ``name``'s delivered position in the writer's next group
        commit, with whatever else is queued (one transaction, no second writer on the
        store's lock); saves of one target queued together write only the newest.

        Raises:
            StoreFencedError: the store is fenced (nothing is written).
            StoreError: the store could not commit it.
        """
        await self._call(CursorOp(name, seq))

    def _alarm_type(self, type_id: str, kind: Kind) -> AlarmType:
        alarm_type = self.catalog.get(type_id)
        if alarm_type.kind is not kind:
            verb = "raise" if kind is Kind.ALARM else "emit as an event"
            raise InvalidRequest(f"{type_id!r} is an {alarm_type.kind.value} type; cannot {verb}")
        return alarm_type

    # ----------------------------------------------------------------- writer thread
    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._release_connection()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop_after = False
            while len(batch) < self._batch_max:
                try:
                    extra = self._queue.get_nowait()
                except queue.Empty:
                    break
                if extra is _STOP:
                    stop_after = True
                    break
                batch.append(extra)
            try:
                self._commit(batch)
            finally:
                self._answered(sum(1 for op, _ in batch if not isinstance(op, CursorOp)))
            if stop_after:
                return

    def _commit(self, batch: list[tuple[Operation, _Reply]]) -> None:
        live = [(op, reply) for op, reply in batch if reply.claim()]
        if not live:
            return
        try:
            results, work = self._apply([op for op, _ in live])
        except Exception as exc:
            if isinstance(exc, StoreFencedError):
                # Nothing may be written until the lock is back (the loss is logged once,
                # by the store): every request fails at once with that reason.
                _deliver([(reply, StoreFencedError(str(exc))) for _, reply in live])
                return
            if is_store_outage(exc):
                # The store is down, not this request: every request of the batch fails
                # alike (one by one would only wait for the store again), one log line.
                self._failures.warning("alarm store write failed", exc)
                why = "the store could not commit the change; retry later"
                _deliver([(reply, StoreError(why)) for _, reply in live])
                return
            if len(live) == 1:
                logger.exception("alarm store write failed")
                _deliver([(live[0][1], StoreError("the store refused the change; see the log"))])
                return
            # One request broke the group commit: apply them one by one so the others land.
            for op, reply in live:
                self._commit([(op, reply.reclaimed())])
            return
        # Published before the callers hear back, so whoever they tell sees it committed.
        changed = self._publish(work)
        _deliver([(reply, result) for (_, reply), result in zip(live, results, strict=True)])
        if changed:
            self._notify()

    def _publish(self, work: _Batch) -> bool:
        """The tail, ``last_seq``, then the commit feed; False if nothing but cursors
        changed (no reader has anything new to look at)."""
        notes = tuple(work.notes)
        if work.purged_through:
            # A row the store no longer has must not come from the tail: a target behind
            # it reads the store, where the gap is visible (its gap notice).
            self.tail.discard_through(work.purged_through)
        self.tail.extend(notes)
        # After the tail: an exporter that sees the new last_seq finds the rows there.
        self._committed_seq = self._last_seq
        changed_ids = work.new_ids | work.dirty_ids
        if not (notes or changed_ids or work.purged or work.purged_through):
            return False
        if self._feed:
            commit = Commit(
                first_seq=notes[0].seq if notes else self._last_seq + 1,
                last_seq=self._last_seq,
                notifications=notes,
                alarms=tuple(work.by_id[i] for i in sorted(changed_ids)),
                purged=frozenset(work.purged),
            )
            for listener in self._feed:
                try:
                    listener(commit)
                except Exception:
                    logger.exception("commit feed listener failed")
        return True

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener(self._committed_seq)
            except Exception:
                logger.exception("commit listener failed")

    def _apply(self, ops: list[Operation]) -> tuple[list[Any], _Batch]:
        kept = self._conn is not None
        try:
            return self._write(ops)
        except DBAPIError as exc:
            # The kept connection was found dead by a statement, before the COMMIT: the
            # server went away since the last group commit (a restart, say). Nothing of
            # this transaction can have committed, so it is written again, once, on a
            # fresh connection from the pool (whose checkout pings it on PostgreSQL):
            # what the pool's pre-ping did for us when every commit checked one out.
            if not (kept and exc.connection_invalidated and not self._committing):
                raise
        return self._write(ops)

    def _write(self, ops: list[Operation]) -> tuple[list[Any], _Batch]:
        if self._write_guard is not None:
            self._write_guard()
        if self._counters_stale:
            # Reusing an id or sequence number that did commit would fail every later write.
            self._load_counters()
            self._counters_stale = False
        saved = (self._last_seq, self._last_alarm_id)
        # Stays set after a failed COMMIT, for _apply to see: no second try then.
        self._committing = False
        conn = self._connection()
        try:
            with conn.begin():
                work = _Batch()
                self._prefetch(conn, work, ops)
                results: list[Any] = []
                for op in ops:
                    try:
                        results.append(self._dispatch(conn, work, op))
                    except ProvsyncError as exc:
                        results.append(exc)
                self._flush(conn, work)
                self._committing = True  # leaving the block commits
            self._remember_active(work)
            return results, work
        except BaseException as exc:
            self._last_seq, self._last_alarm_id = saved
            self._counters_stale = True
            if conn.invalidated or is_store_outage(exc) or not isinstance(exc, DBAPIError):
                # Not trusted for the next commit: the pool discards it or rolls it back,
                # and the next group commit checks out another. A constraint violation
                # (a DBAPIError that is no outage) leaves it as good as new.
                self._release_connection()
            raise

    def _connection(self) -> Connection:
        """The writer's connection, checked out once and kept between group commits.

        Measured: checking one out of the pool and back in (with its reset) per group
        commit cost about a third of a single raise's commit on SQLite, and on
        PostgreSQL the pool's pre-ping adds a round trip to each. The transaction is
        still SQLAlchemy's (``begin``; the engine's ``commit`` event, where the
        ownership check runs; commit), only the checkout is saved. A connection that
        failed is released (``_write``) and the next commit takes a fresh one.
        """
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                self._release_connection()
            conn = self._conn = self.engine.connect()
        return conn

    def _release_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # a dead connection may fail its rollback
                logger.debug("alarm writer: closing its connection failed: {}", exc)

    def _prefetch(self, conn: Connection, work: _Batch, ops: Iterable[Operation]) -> None:
        """Load the existing alarms the batch touches; new keys need no query at all."""
        ids: set[int] = set()
        for op in ops:
            if isinstance(op, RaiseOp):
                found = self._active.get((op.type_id, op.resource, op.qualifier))
                if found is not None:
                    ids.add(found)
            elif isinstance(op, ClearOp):
                if op.alarm_id is not None:
                    ids.add(op.alarm_id)
                elif op.key is not None and (found := self._active.get(op.key)) is not None:
                    ids.add(found)
            elif isinstance(op, AckOp):
                ids.add(op.alarm_id)
        id_list = sorted(ids)
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            for row in conn.execute(_BY_IDS, {"ids": chunk}).mappings():
                work.track(dict(row))

    def _remember_active(self, work: _Batch) -> None:
        """After a commit: keep the key -> id map of active alarms current."""
        active = self._active
        for row in work.by_id.values():
            key = (row["type_id"], row["resource"], row["qualifier"])
            if not row["cleared"]:
                active.set(key, row["id"])
            else:
                active.discard(key, row["id"])

    def _dispatch(self, conn: Connection, work: _Batch, op: Operation) -> Any:
        if isinstance(op, RaiseOp):
            return self._raise(work, op)
        if isinstance(op, ClearOp):
            return self._clear(work, op)
        if isinstance(op, AckOp):
            return self._ack(work, op)
        if isinstance(op, EventOp):
            return self._event(work, op)
        if isinstance(op, CursorOp):
            work.cursors[op.name] = op.seq
            return None
        return self._purge(conn, work, op)

    def _next_seq(self) -> int:
        self._last_seq += 1
        return self._last_seq

    def _log(
        self,
        work: _Batch,
        kind: NotificationKind,
        row: dict[str, Any],
        severity: str,
        at: datetime,
        extra: dict[str, Any] | None = None,
    ) -> int:
        seq = self._next_seq()
        payload, parsed = self._payload(row)
        if extra:
            payload = payload[:-1] + "," + json.dumps(extra, separators=(",", ":"))[1:]
            parsed = {**parsed, **extra}  # str and None values: what the JSON gives back
        raise_seq = row["raise_seq"] if kind is not NotificationKind.ALARM_RAISED else 0
        work.log.append(
            {
                "seq": seq,
                "at": at,
                "kind": kind.value,
                "alarm_id": row["id"],
                "type_id": row["type_id"],
                "resource": row["resource"],
                "qualifier": row["qualifier"],
                "severity": severity,
                "text": row["text"],
                "raise_seq": raise_seq,
                "payload": payload,
            }
        )
        # The row as the store hands it back (Notification.from_row), without reading it:
        # the payload dict is shared between notifications of one kind (readers never
        # change it), the time is the UTC one the store returns.
        # Positional: a quarter cheaper than keywords, and it runs once per log row.
        note = Notification(
            seq,
            _utc(at),
            kind,
            row["id"],
            row["type_id"],
            row["resource"],
            row["qualifier"],
            severity,
            row["text"],
            raise_seq,
            parsed,
        )
        work.notes.append(note)
        return seq

    def _payload(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The JSON of what exporters need beyond the columns, and the same as a dict;
        memoized (few distinct, unless the resolution names the resource)."""
        # Who acknowledged travels with every later notification of the alarm (SNMP's
        # provsyncNotifyAckBy, syslog), not only with the acknowledgement itself.
        ack_by = row.get("ack_by") if row["operator_state"] == "acknowledged" else None
        key = (row["type_id"], row["count"], row["operator_state"], row["resolution"], ack_by)
        cached = self._payloads.get(key)
        if cached is None:
            alarm_type = self.catalog.describe(row["type_id"])
            # Built from the values, not parsed back from the JSON (str and int values:
            # equal either way): the strings are shared with the catalog and the row
            # instead of a fresh copy each, which the log tail keeps for many rows.
            parsed = {
                "type_name": alarm_type.name,
                "event_type": alarm_type.event_type.value,
                "probable_cause": alarm_type.probable_cause,
                "count": row["count"],
                "operator_state": row["operator_state"],
                "resolution": row["resolution"],
            }
            if ack_by is not None:
                parsed["ack_by"] = ack_by
            cached = (self._payload_json(row["type_id"], parsed), parsed)
            if len(self._payloads) > 4096:
                self._payloads.clear()
            self._payloads[key] = cached
        return cached

    def _payload_json(self, type_id: str, parsed: dict[str, Any]) -> str:
        """``json.dumps(parsed, separators=(",", ":"))``, with the part the type decides
        encoded once per type: the resolution usually names the resource, so most raises
        miss the memo, and json.dumps (a new encoder each call) cost more per raise than
        the rest of its log row."""
        count, state, resolution = parsed["count"], parsed["operator_state"], parsed["resolution"]
        if (
            type(count) is not int
            or type(state) is not str
            or type(resolution) is not str
            or "ack_by" in parsed
        ):
            return json.dumps(parsed, separators=(",", ":"))
        head = self._payload_heads.get(type_id)
        if head is None:
            fixed = {k: parsed[k] for k in ("type_name", "event_type", "probable_cause")}
            head = json.dumps(fixed, separators=(",", ":"))[:-1] + ',"count":'
            self._payload_heads[type_id] = head
        return (
            f'{head}{count},"operator_state":{_json_string(state)},'
            f'"resolution":{_json_string(resolution)}}}'
        )

    def _history(
        self,
        work: _Batch,
        row: dict[str, Any],
        change: str,
        at: datetime,
        seq: int | None,
        by: str | None = None,
        note: str | None = None,
        severity: str | None = None,
    ) -> None:
        work.history.append(
            {
                "alarm_id": row["id"],
                "seq": seq,
                "at": at,
                "change": change,
                "severity": severity or row["severity"],
                "text": row["text"],
                "by": by,
                "note": note,
            }
        )

    def _raise(self, work: _Batch, op: RaiseOp) -> AlarmChange:
        now = self._clock()
        key = (op.type_id, op.resource, op.qualifier)
        row = work.active_by_key.get(key)
        if row is None:
            self._last_alarm_id += 1
            alarm_type = self.catalog.get(op.type_id)
            row = {
                "id": self._last_alarm_id,
                "type_id": op.type_id,
                "resource": op.resource,
                "qualifier": op.qualifier,
                "severity": op.severity.value,
                "text": op.text or alarm_type.name,
                "cleared": False,
                "raised_at": now,
                "last_raised_at": now,
                "changed_at": now,
                "cleared_at": None,
                "count": 1,
                "raise_seq": 0,
                "operator_state": "none",
                "ack_by": None,
                "ack_at": None,
                "ack_note": None,
                "resolution": alarm_type.resolution.replace("{resource}", op.resource),
            }
            seq = self._log(work, NotificationKind.ALARM_RAISED, row, row["severity"], now)
            row["raise_seq"] = seq
            work.track(row)
            work.new_ids.add(row["id"])
            self._history(work, row, "raised", now, seq, by=op.by)
            return AlarmChange(dict(row), seq, "raised")
        row["count"] += 1
        row["last_raised_at"] = now
        changes = []
        previous = row["severity"]
        if row["severity"] != op.severity.value:
            changes.append("severity")
            row["severity"] = op.severity.value
        if op.text and row["text"] != op.text:
            changes.append("text")
            row["text"] = op.text
        self._mark_dirty(work, row)
        if not changes:
            # A repeat of an unchanged condition: counted, not notified (RFC 8632 3.4).
            self._history(work, row, "repeated", now, None, by=op.by)
            work.repeated.add(row["id"])
            return AlarmChange(dict(row), None, "repeated")
        row["changed_at"] = now
        change = "+".join(changes)
        extra = {"change": change}
        if "severity" in changes:
            extra["previous_severity"] = previous
        seq = self._log(work, NotificationKind.ALARM_CHANGED, row, row["severity"], now, extra)
        self._history(work, row, change, now, seq, by=op.by)
        return AlarmChange(dict(row), seq, change)

    def _find(self, work: _Batch, alarm_id: int) -> dict[str, Any]:
        row = work.by_id.get(alarm_id)
        if row is None:
            raise AlarmNotFound(f"no alarm with id {alarm_id}")
        return row

    def _mark_dirty(self, work: _Batch, row: dict[str, Any]) -> None:
        if row["id"] not in work.new_ids:
            work.dirty_ids.add(row["id"])

    def _clear(self, work: _Batch, op: ClearOp) -> AlarmChange:
        if op.alarm_id is not None:
            row = self._find(work, op.alarm_id)
        else:
            assert op.key is not None
            found = work.active_by_key.get(op.key)
            if found is None:
                type_id, resource, qualifier = op.key
                suffix = f" qualifier {qualifier!r}" if qualifier else ""
                raise AlarmNotFound(f"no active {type_id} alarm for resource {resource!r}{suffix}")
            row = found
        if row["cleared"]:
            return AlarmChange(dict(row), None, "already-cleared")
        now = self._clock()
        row["cleared"] = True
        row["cleared_at"] = now
        row["changed_at"] = now
        del work.active_by_key[(row["type_id"], row["resource"], row["qualifier"])]
        self._mark_dirty(work, row)
        extra: dict[str, Any] = {"cleared_by": op.by} if op.by else {}
        if op.note:
            extra["note"] = op.note
        seq = self._log(
            work, NotificationKind.ALARM_CLEARED, row, Severity.CLEARED.value, now, extra
        )
        self._history(
            work, row, "cleared", now, seq, by=op.by, note=op.note, severity=Severity.CLEARED
        )
        return AlarmChange(dict(row), seq, "cleared")

    def _ack(self, work: _Batch, op: AckOp) -> AlarmChange:
        row = self._find(work, op.alarm_id)
        wanted = "acknowledged" if op.acknowledge else "none"
        change = "acknowledged" if op.acknowledge else "unacknowledged"
        if row["operator_state"] == wanted:
            return AlarmChange(dict(row), None, f"already-{change}")
        now = self._clock()
        row["operator_state"] = wanted
        row["ack_by"] = op.by if op.acknowledge else None
        row["ack_at"] = now if op.acknowledge else None
        row["ack_note"] = op.note if op.acknowledge else None
        self._mark_dirty(work, row)
        severity = Severity.CLEARED.value if row["cleared"] else row["severity"]
        extra: dict[str, Any] = {"change": change, "operator": op.by}
        if op.note:
            extra["note"] = op.note
        seq = self._log(work, NotificationKind.ALARM_CHANGED, row, severity, now, extra)
        self._history(work, row, change, now, seq, by=op.by, note=op.note)
        return AlarmChange(dict(row), seq, change)

    def _event(self, work: _Batch, op: EventOp) -> int:
        now = self._clock()
        # The type first: an unknown one must not take a sequence number (a gap).
        event_type = self.catalog.get(op.type_id)
        seq = self._next_seq()
        text = op.text or event_type.name
        work.events.append(
            {
                "seq": seq,
                "at": now,
                "type_id": op.type_id,
                "resource": op.resource,
                "severity": op.severity.value,
                "text": text,
                "details": json.dumps(op.details, separators=(",", ":"), default=str),
            }
        )
        payload: dict[str, Any] = {
            "type_name": event_type.name,
            "event_type": event_type.event_type.value,
            "probable_cause": event_type.probable_cause,
        }
        if op.details:
            payload["details"] = op.details
        encoded = json.dumps(payload, separators=(",", ":"), default=str)
        work.log.append(
            {
                "seq": seq,
                "at": now,
                "kind": NotificationKind.EVENT.value,
                "alarm_id": 0,
                "type_id": op.type_id,
                "resource": op.resource,
                "qualifier": "",
                "severity": op.severity.value,
                "text": text,
                "raise_seq": 0,
                "payload": encoded,
            }
        )
        # The payload parsed back: details may hold values the JSON only has as strings.
        note = Notification(
            seq,
            _utc(now),
            NotificationKind.EVENT,
            0,
            op.type_id,
            op.resource,
            "",
            op.severity.value,
            text,
            0,
            json.loads(encoded),
        )
        work.notes.append(note)
        return seq

    def _purge(self, conn: Connection, work: _Batch, op: PurgeOp) -> dict[str, int]:
        now = self._clock()
        counts: dict[str, int] = {}
        cutoff = now - timedelta(days=op.cleared_alarm_days)
        old = select(_ALARMS.c.id).where(
            and_(_ALARMS.c.cleared.is_(True), _ALARMS.c.cleared_at < cutoff)
        )
        # The ids first, for the commit feed (same criteria, same transaction, one writer).
        work.purged.update(conn.execute(old).scalars())
        conn.execute(delete(_HISTORY).where(_HISTORY.c.alarm_id.in_(old)))
        counts["alarms"] = conn.execute(
            delete(_ALARMS).where(and_(_ALARMS.c.cleared.is_(True), _ALARMS.c.cleared_at < cutoff))
        ).rowcount
        counts["events"] = conn.execute(
            delete(_EVENTS).where(_EVENTS.c.at < now - timedelta(days=op.event_days))
        ).rowcount
        # What a configured target has not delivered stays, up to the bounds; what goes
        # past them is recorded as a loss in this same transaction. The committed cursors
        # are the positions (a restart resumes there); rows held in memory are kept.
        cursors = read_cursors(conn, op.targets)
        held = held_spans(conn, cursors, self.holdings)
        doomed = purgeable(op, self._last_seq, now, cursors, held)
        losses = find_losses(conn, doomed, cursors, op, self._last_seq)
        highest = conn.execute(select(func.max(_LOG.c.seq)).where(doomed)).scalar()
        counts["notifications"] = conn.execute(delete(_LOG).where(doomed)).rowcount
        if highest is not None:
            work.purged_through = max(work.purged_through, int(highest))
        counts["undelivered"] = sum(loss.count for loss in losses)
        for loss in losses:
            self._record_loss(conn, work, loss)
        return counts

    def _record_loss(self, conn: Connection, work: _Batch, loss: Loss) -> None:
        """An export-gap event and the export-loss alarm (raised, or changed to name the
        new range): the loss is permanent, so only the operator clears the alarm."""
        logger.warning(
            "retention purged notifications {} that export target {} had not received "
            "({} of them; past [retention] {} = {})",
            loss.lost,
            loss.target,
            loss.count,
            loss.bound,
            loss.limit,
        )
        resource = loss.target[:MAX_FIELD]
        gap = self.catalog.get("export-gap")
        self._event(work, EventOp(gap.id, resource, gap.severity, loss.text, loss.details()))
        alarm = self.catalog.get("export-loss")
        key = (alarm.id, resource, "")
        if key not in work.active_by_key and (found := self._active.get(key)) is not None:
            columns = [_ALARMS.c[f] for f in ALARM_FIELDS]
            row = conn.execute(select(*columns).where(_ALARMS.c.id == found)).mappings().first()
            if row is not None:
                work.track(dict(row))
        self._raise(work, RaiseOp(alarm.id, resource, "", alarm.severity, loss.text, None))

    def _flush(self, conn: Connection, work: _Batch) -> None:
        raw = self._raw
        if work.dirty_ids:
            # Existing rows first: a clear frees the active key a new raise may reuse.
            rows = (work.by_id[i] for i in sorted(work.dirty_ids))
            raw.update(conn, _ALARMS, _MUTABLE, "id", rows, _ALARM_STAMPS)
        if work.new_ids:
            rows = (work.by_id[i] for i in sorted(work.new_ids))
            raw.insert(conn, _ALARMS, ALARM_FIELDS, rows, _ALARM_STAMPS)
        raw.insert(conn, _HISTORY, _HISTORY_FIELDS, work.history, _AT)
        raw.insert(conn, _EVENTS, _EVENT_FIELDS, work.events, _AT)
        raw.insert(conn, _LOG, _LOG_FIELDS, work.log, _AT)
        if work.log or work.new_ids:
            self._save_counters(conn)
        if work.cursors:
            self._save_cursors(conn, work.cursors)

    def _save_cursors(self, conn: Connection, cursors: dict[str, int]) -> None:
        now = self._clock()
        rows = [{"name": n, "last_seq": s, "updated_at": now} for n, s in cursors.items()]
        self._raw.upsert(conn, _CURSORS, _CURSOR_FIELDS, "name", rows, _UPDATED_AT)

    def _save_counters(self, conn: Connection) -> None:
        # Through the driver: building SQLAlchemy's upsert construct each commit cost
        # about as much as the rest of a single raise's commit.
        rows = [
            {"key": "last_seq", "value": str(self._last_seq)},
            {"key": "last_alarm_id", "value": str(self._last_alarm_id)},
        ]
        self._raw.upsert(conn, _META, _META_FIELDS, "key", rows)


def _utc(value: datetime) -> datetime:
    """``value`` as the store returns it: in UTC (the same instant; iso() then says Z)."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _field(name: str, value: str, *, allow_empty: bool = False) -> str:
    value = value.strip()
    if not value and not allow_empty:
        raise InvalidRequest(f"{name} must not be empty")
    if len(value) > MAX_FIELD:
        raise InvalidRequest(f"{name} is longer than {MAX_FIELD} characters")
    if _CONTROL.search(value) is not None:
        raise InvalidRequest(f"{name} must not contain control characters")
    return value


def _text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise InvalidRequest(f"text is longer than {MAX_TEXT} characters")
    return value
