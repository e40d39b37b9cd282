"""PROVSYNC-MIB's data, kept current from the notification log.

The first build reads the active alarms and the newest log entries. After that, every
refresh reads only the log entries after the last one applied, fetches the alarms they
touch, and updates those rows; a gap (retention purged entries it had not applied) or a
very large backlog triggers a full rebuild. Reads run in a worker thread; the changes
are applied on the event loop, where the responder reads the view.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from agent import __version__
from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.records import ALARM_FIELDS, Notification
from agent.alarms.severity import Severity
from agent.export.snmp import ber, values
from agent.export.snmp.oids import (
    ACTIVE_ALARM_COLUMNS,
    ALARM_TYPE_COLUMNS,
    ELEMENT_COLUMNS,
    LOG_COLUMNS,
    SYS_CONTACT,
    SYS_DESCR,
    SYS_LOCATION,
    SYS_NAME,
    SYS_OBJECT_ID,
    SYS_SERVICES,
    SYS_UPTIME,
    MibOids,
)
from agent.export.snmp.view import MibView, ScalarRegion, TableRegion
from agent.store.models import ALARMS, DISTRIBUTIONS, ELEMENTS, LOG

FULL_REBUILD_AFTER = 20_000
_COUNTED = (
    Severity.CRITICAL,
    Severity.MAJOR,
    Severity.MINOR,
    Severity.WARNING,
    Severity.INDETERMINATE,
)


@dataclass
class SystemInfo:
    name: str
    description: str = f"provsync {__version__} provisioning sync agent"
    contact: str = ""
    location: str = ""


@dataclass
class _Changes:
    """What one refresh read from the store, applied later on the event loop."""

    seq: int
    base: int = 0
    full: bool = False
    alarms: list[tuple[int, list[bytes] | None, str | None]] = field(default_factory=list)
    log: list[tuple[int, list[bytes]]] = field(default_factory=list)
    last_changed: datetime | None = None
    elements: list[tuple[int, list[bytes]]] | None = None
    extra: frozenset[int] = frozenset()


class MibData:
    """The view and the state needed to keep it current."""

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        oids: MibOids,
        system: SystemInfo,
        *,
        log_size: int = 1000,
        started_at: datetime | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.oids = oids
        self.system = system
        self.log_size = log_size
        self.started_at = started_at or datetime.now(UTC)
        self._clock = clock
        self._boot = clock()
        self.seq = 0
        self.last_changed = self.started_at
        self.pending: set[int] = set()
        """Repeated alarms still to re-read (only the event loop touches this)."""
        self._severity_of: dict[int, str] = {}
        self.counts: Counter[str] = Counter()
        self.types = TableRegion(
            oids["provsyncAlarmTypeEntry"], range(2, len(ALARM_TYPE_COLUMNS) + 1)
        )
        self.alarms = TableRegion(
            oids["provsyncActiveAlarmEntry"], range(2, len(ACTIVE_ALARM_COLUMNS) + 1)
        )
        self.log = TableRegion(oids["provsyncNotificationLogEntry"], range(2, len(LOG_COLUMNS) + 1))
        self.elements = TableRegion(
            oids["provsyncElementEntry"], range(2, len(ELEMENT_COLUMNS) + 1)
        )
        self.types.replace(
            [(i, values.alarm_type_row(t)) for i, t in enumerate(self.catalog, start=1)]
        )
        self.view = MibView([self._system_region(), self._agent_region(), self.types,
                             self.alarms, self.log, self.elements])  # fmt: skip

    # ------------------------------------------------------------------ regions
    def uptime_ticks(self) -> int:
        return int((self._clock() - self._boot) * 100) & 0xFFFFFFFF

    def _system_region(self) -> ScalarRegion:
        system = self.system
        description = values.text(system.description)
        object_id = ber.oid(self.oids.root)
        contact, name = values.text(system.contact), values.text(system.name)
        location, services = values.text(system.location), ber.integer(72)
        return ScalarRegion(
            [
                (SYS_DESCR[:-1], lambda: description),
                (SYS_OBJECT_ID[:-1], lambda: object_id),
                (SYS_UPTIME[:-1], lambda: ber.unsigned(self.uptime_ticks(), ber.TIMETICKS)),
                (SYS_CONTACT[:-1], lambda: contact),
                (SYS_NAME[:-1], lambda: name),
                (SYS_LOCATION[:-1], lambda: location),
                (SYS_SERVICES[:-1], lambda: services),
            ]
        )

    def _agent_region(self) -> ScalarRegion:
        oids = self.oids
        version = values.text(__version__)
        started = values.date_and_time(self.started_at)
        items: list[tuple[tuple[int, ...], Callable[[], bytes]]] = [
            (oids["provsyncAgentVersion"], lambda: version),
            (oids["provsyncAgentStartTime"], lambda: started),
            (oids["provsyncLastSequence"], lambda: values.gauge(self.seq)),
            (oids["provsyncActiveAlarms"], lambda: values.gauge(len(self.alarms))),
            (oids["provsyncActiveAlarmsLastChanged"],
             lambda: values.date_and_time(self.last_changed)),
        ]  # fmt: skip
        names = ("Critical", "Major", "Minor", "Warning", "Indeterminate")
        for name, severity in zip(names, _COUNTED, strict=True):
            items.append((oids[f"provsyncActive{name}"], self._count_of(severity)))
        return ScalarRegion(items)

    def _count_of(self, severity: Severity) -> Callable[[], bytes]:
        return lambda: values.gauge(self.counts[severity])

    # ------------------------------------------------------------------ refresh
    def read_changes(self, last_seq: int, extra: frozenset[int] = frozenset()) -> _Changes:
        """Runs in a worker thread: what changed between ``self.seq`` and ``last_seq``,
        plus the alarms in ``extra`` (repeated: their count changed without a log row)."""
        if self.seq == 0 or last_seq - self.seq > FULL_REBUILD_AFTER:
            return self._read_full()
        notes = queries.read_log(self.engine, self.seq, FULL_REBUILD_AFTER)
        if notes and notes[0].seq != self.seq + 1:
            return self._read_full()  # retention purged entries this view had not applied
        changes = _Changes(seq=notes[-1].seq if notes else self.seq, base=self.seq, extra=extra)
        changes.elements = self._element_rows()
        touched: list[int] = []
        for note in notes:
            changes.log.append((note.seq, self._log_values(note)))
            if note.alarm_id:
                touched.append(note.alarm_id)
                changes.last_changed = note.at
        touched.extend(extra)
        rows = self._alarm_rows(sorted(set(touched)))
        for alarm_id in dict.fromkeys(touched):
            row = rows.get(alarm_id)
            if row is None or row["cleared"]:
                changes.alarms.append((alarm_id, None, None))
            else:
                changes.alarms.append((alarm_id, self._alarm_values(row), row["severity"]))
        return changes

    def _read_full(self) -> _Changes:
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(LOG.c.seq))).scalar() or 0
            rows = conn.execute(
                select(*[ALARMS.c[f] for f in ALARM_FIELDS]).where(ALARMS.c.cleared.is_(False))
            ).mappings()
            alarms: list[tuple[int, list[bytes] | None, str | None]] = [
                (r["id"], self._alarm_values(dict(r)), r["severity"]) for r in rows
            ]
            newest = conn.execute(select(func.max(ALARMS.c.changed_at))).scalar()
        notes = queries.read_log(self.engine, max(0, last - self.log_size), self.log_size)
        changes = _Changes(seq=max(last, self.seq), full=True, alarms=alarms)
        changes.elements = self._element_rows()
        changes.log = [(n.seq, self._log_values(n)) for n in notes]
        if newest is not None:
            changes.last_changed = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
        return changes

    def _element_rows(self) -> list[tuple[int, list[bytes]]]:
        """The element table is small: read whole on every refresh (sync jobs commit events)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ELEMENTS).order_by(ELEMENTS.c.id)).all()
            blocking = set(conn.execute(
                select(ALARMS.c.type_id).where(ALARMS.c.cleared.is_(False) & ALARMS.c.type_id.in_(
                    ("sync-required", "sync-reconcile-required")))).scalars())  # fmt: skip
            errors: dict[int, int] = dict(conn.execute(
                select(DISTRIBUTIONS.c.element_id, func.count())
                .where(DISTRIBUTIONS.c.rejected.is_(True) & (DISTRIBUTIONS.c.state != "done"))
                .group_by(DISTRIBUTIONS.c.element_id)
            ).tuples().all())  # fmt: skip
        # The sharing group's state, shown on every sharing element (DESIGN.md, Sharing).
        if "sync-required" in blocking:
            group = "syncRequired"
        elif "sync-reconcile-required" in blocking:
            group = "reconcileRequired"
        else:
            group = "sharing"
        return [
            (row.id, values.element_row(row, group if row.sharing else "notSharing",
                                        errors.get(row.id, 0)))
            for row in rows
        ]  # fmt: skip

    def _alarm_rows(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        columns = [ALARMS.c[f] for f in ALARM_FIELDS]
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for row in conn.execute(select(*columns).where(ALARMS.c.id.in_(chunk))).mappings():
                    found[row["id"]] = dict(row)
        return found

    def _alarm_values(self, row: dict[str, Any]) -> list[bytes]:
        return values.active_alarm_row(row, self.catalog.describe(row["type_id"]))

    def _log_values(self, note: Notification) -> list[bytes]:
        return values.log_row(
            note.at, note.kind, note.alarm_id, note.type_id, note.resource, note.severity,
            note.text, note.raise_seq,
        )  # fmt: skip

    def apply(self, changes: _Changes) -> bool:
        """On the event loop: make the view show ``changes``; False if they are stale."""
        if not changes.full and changes.base != self.seq:
            return False  # another refresh applied in between; read again
        if changes.full and changes.seq < self.seq:
            return False
        if changes.full:
            self.alarms.replace([(i, v) for i, v, _ in changes.alarms if v is not None])
            self._severity_of = {i: s for i, _, s in changes.alarms if s is not None}
            self.log.replace(changes.log)
        else:
            for alarm_id, row_values, severity in changes.alarms:
                if row_values is None:
                    self.alarms.remove(alarm_id)
                    self._severity_of.pop(alarm_id, None)
                else:
                    self.alarms.set_row(alarm_id, row_values)
                    self._severity_of[alarm_id] = severity or ""
            for seq, row_values in changes.log:
                self.log.set_row(seq, row_values)
            self.log.trim_to(self.log_size)
        self.counts = Counter(self._severity_of.values())
        if changes.elements is not None:
            self.elements.replace(changes.elements)
        if changes.last_changed is not None:
            self.last_changed = changes.last_changed
        self.seq = max(self.seq, changes.seq)
        self.pending -= changes.extra
        return True
