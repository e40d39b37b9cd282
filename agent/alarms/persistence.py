"""The alarm writer's side of the store: counters, its kept connection, loading the
working set of a group commit, writing it, and retention's purge.

Only the writer thread uses it. Rows go through the driver (agent.store.rawsql) in a few
``executemany`` statements per group commit; the transaction is still SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from loguru import logger
from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, select

from agent.alarms.active import ActiveKeys
from agent.alarms.operations import AckOp, ClearOp, EventOp, Operation, PurgeOp, RaiseOp
from agent.alarms.records import ALARM_FIELDS
from agent.alarms.retention import Holding, Loss, find_losses, held_spans, purgeable, read_cursors
from agent.alarms.transitions import Batch, Clock, Transitions
from agent.store.models import ALARMS as _ALARMS
from agent.store.models import CURSORS as _CURSORS
from agent.store.models import EVENTS as _EVENTS
from agent.store.models import HISTORY as _HISTORY
from agent.store.models import LOG as _LOG
from agent.store.models import META as _META
from agent.store.rawsql import RawWriter

MAX_FIELD = 255
"""The longest resource or qualifier (a column's width)."""

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


class WriterStore:
    """The store as the alarm writer reads and writes it.

    Args:
        engine: the store's engine (already migrated).
        transitions: the state machine; its counters are loaded and saved here.
        holdings: export target -> the rows it holds in memory (retention keeps them).
        clock: returns aware UTC datetimes.
    """

    def __init__(
        self,
        engine: Engine,
        transitions: Transitions,
        holdings: Mapping[str, Holding],
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.transitions = transitions
        self.counters = transitions.counters
        self.holdings = holdings
        self._clock = clock
        self._raw = RawWriter(engine.dialect)
        self.conn: Connection | None = None
        """The writer's connection, kept checked out between group commits (see
        ``connection``); only the writer thread uses it."""

    def load_counters(self) -> ActiveKeys:
        """Set the counters from the store; returns the key -> id map of active alarms."""
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
            keys = ActiveKeys((t, r, q, i) for t, r, q, i in active)
        self.counters.last_seq = max(int(meta.get("last_seq", 0)), max_seq, max_event)
        self.counters.last_alarm_id = max(int(meta.get("last_alarm_id", 0)), max_alarm)
        return keys

    def connection(self) -> Connection:
        """The writer's connection, checked out once and kept between group commits.

        Measured: checking one out of the pool and back in (with its reset) per group
        commit cost about a third of a single raise's commit on SQLite, and on
        PostgreSQL the pool's pre-ping adds a round trip to each. The transaction is
        still SQLAlchemy's (``begin``; the engine's ``commit`` event, where the
        ownership check runs; commit), only the checkout is saved. A connection that
        failed is released (by the writer) and the next commit takes a fresh one.
        """
        conn = self.conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                self.release()
            conn = self.conn = self.engine.connect()
        return conn

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # a dead connection may fail its rollback
                logger.debug("alarm writer: closing its connection failed: {}", exc)

    def prefetch(
        self, conn: Connection, work: Batch, ops: Iterable[Operation], active: ActiveKeys
    ) -> None:
        """Load the existing alarms the batch touches; new keys need no query at all."""
        ids: set[int] = set()
        for op in ops:
            if isinstance(op, RaiseOp):
                found = active.get((op.type_id, op.resource, op.qualifier))
                if found is not None:
                    ids.add(found)
            elif isinstance(op, ClearOp):
                if op.alarm_id is not None:
                    ids.add(op.alarm_id)
                elif op.key is not None and (found := active.get(op.key)) is not None:
                    ids.add(found)
            elif isinstance(op, AckOp):
                ids.add(op.alarm_id)
        id_list = sorted(ids)
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            for row in conn.execute(_BY_IDS, {"ids": chunk}).mappings():
                work.track(dict(row))

    def flush(self, conn: Connection, work: Batch) -> None:
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
            {"key": "last_seq", "value": str(self.counters.last_seq)},
            {"key": "last_alarm_id", "value": str(self.counters.last_alarm_id)},
        ]
        self._raw.upsert(conn, _META, _META_FIELDS, "key", rows)

    def purge(
        self, conn: Connection, work: Batch, op: PurgeOp, active: ActiveKeys
    ) -> dict[str, int]:
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
        last_seq = self.counters.last_seq
        cursors = read_cursors(conn, op.targets)
        held = held_spans(conn, cursors, self.holdings)
        doomed = purgeable(op, last_seq, now, cursors, held)
        losses = find_losses(conn, doomed, cursors, op, last_seq)
        highest = conn.execute(select(func.max(_LOG.c.seq)).where(doomed)).scalar()
        counts["notifications"] = conn.execute(delete(_LOG).where(doomed)).rowcount
        if highest is not None:
            work.purged_through = max(work.purged_through, int(highest))
        counts["undelivered"] = sum(loss.count for loss in losses)
        for loss in losses:
            self._record_loss(conn, work, loss, active)
        return counts

    def _record_loss(self, conn: Connection, work: Batch, loss: Loss, active: ActiveKeys) -> None:
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
        catalog = self.transitions.catalog
        resource = loss.target[:MAX_FIELD]
        gap = catalog.get("export-gap")
        self.transitions.event(
            work, EventOp(gap.id, resource, gap.severity, loss.text, loss.details())
        )
        alarm = catalog.get("export-loss")
        key = (alarm.id, resource, "")
        if key not in work.active_by_key and (found := active.get(key)) is not None:
            columns = [_ALARMS.c[f] for f in ALARM_FIELDS]
            row = conn.execute(select(*columns).where(_ALARMS.c.id == found)).mappings().first()
            if row is not None:
                work.track(dict(row))
        self.transitions.raise_(
            work, RaiseOp(alarm.id, resource, "", alarm.severity, loss.text, None)
        )
