"""The rows of PROVSYNC-MIB's tables, encoded, and the store reads the view is built from.

:func:`read_snapshot` reads the whole view (in a worker thread, the active alarms in
chunks of rows encoded as they come, so they are never all held as row dicts at once);
:func:`read_elements` reads the element table again when a commit changed elements or
distributions (:func:`watch_elements`). agent.export.snmp.mibdata installs what they
read and keeps it current from the commit feed with the same encoders.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, RowMapping, func, select

from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.feed import AlarmRow
from agent.alarms.records import Notification
from agent.export.snmp import values
from agent.export.snmp.oids import ACTIVE_ALARM_COLUMNS, MibOids
from agent.export.snmp.view import TableRegion
from agent.sharing.group import BLOCKING_ALARMS
from agent.store.models import ALARMS, DISTRIBUTIONS, ELEMENTS, LOG, META
from agent.store.table_watch import TableWatch

BUILD_CHUNK = 2000
"""Active alarms read and encoded per query while building: bounds the rows held."""
ELEMENT_FIELDS = ("name", "type", "sync_state", "sharing", "last_sync_at")
"""The columns of ``elements`` the element table shows: only their updates count."""
DISTRIBUTION_FIELDS = ("element_id", "state", "rejected")
"""The columns of ``distributions`` the distribution-error count depends on."""
_VIEW_FIELDS = (
    "id",
    "type_id",
    "resource",
    "qualifier",
    "severity",
    "text",
    "cleared",
    "raised_at",
    "changed_at",
    "count",
    "raise_seq",
    "operator_state",
    "ack_by",
    "resolution",
)
"""The ``alarms`` columns a row of the active alarm table is made of."""
_BY_TYPE = (
    "provsyncAlarmTypeRef",
    "provsyncAlarmName",
    "provsyncAlarmEventType",
    "provsyncAlarmProbableCause",
    "provsyncAlarmProbableCauseCode",
)
"""Active alarm columns the alarm's type decides: kept once per value, not per row."""


def watch_elements(engine: Engine) -> TableWatch:
    """A watch of what the element table shows: elements and their distributions."""
    return TableWatch(engine, {ELEMENTS: ELEMENT_FIELDS, DISTRIBUTIONS: DISTRIBUTION_FIELDS})


@dataclass(frozen=True, slots=True)
class ElementRow:
    """What the element table shows of one element (the ``elements`` columns)."""

    id: int
    name: str
    type: str
    sync_state: str
    sharing: bool
    last_sync_at: datetime | None


@dataclass
class ElementRows:
    """The element table as read from the store, with the watch generation before it."""

    generation: int
    rows: list[tuple[ElementRow, int]]
    """Each element (ordered by id) with its count of distribution errors."""


@dataclass
class Snapshot:
    """A view built from the store in a worker thread, installed on the event loop."""

    seq: int
    alarms: TableRegion
    counts: Counter[str]
    blocking: dict[str, set[int]]
    log: list[tuple[int, list[bytes]]]
    elements: ElementRows
    last_changed: datetime | None = None


def alarm_table(oids: MibOids) -> TableRegion:
    """The active alarm table, empty, its by-type columns shared between rows."""
    return TableRegion(
        oids["provsyncActiveAlarmEntry"],
        range(2, len(ACTIVE_ALARM_COLUMNS) + 1),
        shared=[ACTIVE_ALARM_COLUMNS.index(c) + 1 for c in _BY_TYPE],
    )


def alarm_cells(row: AlarmRow | RowMapping, catalog: Catalog) -> list[bytes]:
    """The cells of an active alarm's row."""
    return values.active_alarm_row(row, catalog.describe(row["type_id"]))


def log_cells(note: Notification) -> list[bytes]:
    """The cells of a notification log row."""
    return values.log_row(
        note.at,
        note.kind,
        note.alarm_id,
        note.type_id,
        note.resource,
        note.severity,
        note.text,
        note.raise_seq,
    )


def read_snapshot(
    engine: Engine, catalog: Catalog, oids: MibOids, log_size: int, watch: TableWatch | None
) -> Snapshot:
    """Worker thread: the whole view from the store.

    The position is read first and everything else after it: what commits in between is
    in the feed the caller replays after installing (applying a commit again is
    harmless: it sets rows to its state, and later commits set theirs).
    """
    with engine.connect() as conn:
        last = conn.execute(select(func.max(LOG.c.seq))).scalar() or 0
        saved = conn.execute(select(META.c.value).where(META.c.key == "last_seq")).scalar()
        # Retention may have purged the newest rows; the writer's counter remains.
        seq = max(last, int(saved or 0))
        newest = conn.execute(select(func.max(ALARMS.c.changed_at))).scalar()
    table = alarm_table(oids)
    counts: Counter[str] = Counter()
    blocking: dict[str, set[int]] = {t: set() for t in BLOCKING_ALARMS}
    columns = [ALARMS.c[f] for f in _VIEW_FIELDS]
    with engine.connect() as conn:
        # One query, rows fetched BUILD_CHUNK at a time (a server-side cursor on
        # PostgreSQL) and encoded as they come. (Pages by ``id >`` are no cheaper:
        # SQLite picks the ``cleared`` index and sorts every active alarm per page.)
        rows = conn.execute(
            select(*columns).where(ALARMS.c.cleared.is_(False)).order_by(ALARMS.c.id),
            execution_options={"yield_per": BUILD_CHUNK},
        ).mappings()
        for row in rows:
            table.append(row["id"], alarm_cells(row, catalog))
            counts[row["severity"]] += 1
            if row["type_id"] in blocking:
                blocking[row["type_id"]].add(row["id"])
    notes = queries.read_log(engine, max(0, seq - log_size), log_size)
    snapshot = Snapshot(
        seq=seq,
        alarms=table,
        counts=counts,
        blocking=blocking,
        log=[(n.seq, log_cells(n)) for n in notes if n.seq <= seq],
        elements=read_elements(engine, watch),
    )
    if newest is not None:
        snapshot.last_changed = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
    return snapshot


def read_elements(engine: Engine, watch: TableWatch | None) -> ElementRows:
    """Worker thread (or the loop: the table is small): the element rows."""
    generation = watch.generation if watch is not None else 0
    with engine.connect() as conn:
        rows = conn.execute(
            select(*[ELEMENTS.c[f] for f in ("id", *ELEMENT_FIELDS)]).order_by(ELEMENTS.c.id)
        ).all()
        errors: dict[int, int] = dict(
            conn.execute(
                select(DISTRIBUTIONS.c.element_id, func.count())
                .where(DISTRIBUTIONS.c.rejected.is_(True) & (DISTRIBUTIONS.c.state != "done"))
                .group_by(DISTRIBUTIONS.c.element_id)
            ).all()
        )
    return ElementRows(
        generation,
        [
            (
                ElementRow(
                    id=row.id,
                    name=row.name,
                    type=row.type,
                    sync_state=row.sync_state,
                    sharing=bool(row.sharing),
                    last_sync_at=row.last_sync_at,
                ),
                errors.get(row.id, 0),
            )
            for row in rows
        ],
    )
