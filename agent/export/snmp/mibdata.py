"""PROVSYNC-MIB's data, kept current from the alarm manager's commit feed.

The view is built once from the store (:meth:`MibData.read_full`, in a worker thread and
in chunks of rows, so the active alarms are never all held as row dicts at once; the
reads and the row encoders are agent.export.snmp.mibread) and installed on the event
loop. After that each group commit the writer publishes
(:class:`agent.alarms.feed.Commit`) is applied on the loop (:meth:`MibData.apply_commit`):
the alarm rows it changed are set or removed, its log rows appended, the counts moved by
what changed. Nothing is read from the store for it. The element table is read again only
when a commit of this process changed elements or distributions (a
:class:`agent.store.table_watch.TableWatch`); the sharing state it shows follows the
active sync-required / sync-reconcile-required alarms, which the view has. A commit that
does not follow the last one applied (one the view missed) is refused, and the owner
builds again from the store.

Memory: each active alarm is one bytes object of pre-encoded cells (the cells its type
decides are shared), its index in an array and its index's encoded sub-identifier;
severities are read back from the cells. No dict or list entry per alarm otherwise.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from agent import __version__
from agent.alarms.catalog import Catalog
from agent.alarms.feed import AlarmRow, Commit
from agent.alarms.severity import Severity
from agent.export.snmp import ber, values
from agent.export.snmp.mibread import (
    ElementRow,
    ElementRows,
    Snapshot,
    alarm_cells,
    alarm_table,
    log_cells,
    read_elements,
    read_snapshot,
)
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
from agent.export.snmp.standard import display_string
from agent.export.snmp.view import MibView, Region, ScalarRegion, TableRegion
from agent.sharing.group import (
    BLOCKING_ALARMS,
    NOT_SHARING,
    RECONCILE_REQUIRED,
    SYNC_REQUIRED,
    group_state,
)
from agent.store.table_watch import TableWatch

_COUNTED = (
    Severity.CRITICAL,
    Severity.MAJOR,
    Severity.MINOR,
    Severity.WARNING,
    Severity.INDETERMINATE,
)
_SEVERITY_COLUMN = ACTIVE_ALARM_COLUMNS.index("provsyncAlarmSeverity") + 1
_SEVERITY_OF_CELL = {values.severity(s): s.value for s in Severity}


@dataclass
class SystemInfo:
    name: str
    description: str = f"provsync {__version__} provisioning sync agent"
    contact: str = ""
    location: str = ""


class MibData:
    """The view and the state needed to keep it current.

    Only the event loop changes it (``install``, ``apply_commit``, ``set_elements``);
    ``read_*`` methods only read the store and may run in a worker thread.
    """

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
        watch: TableWatch | None = None,
        standard: Sequence[Region] = (),
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.oids = oids
        self.system = system
        self.log_size = log_size
        self.started_at = started_at or datetime.now(UTC)
        self.watch = watch
        """Moves when elements or distributions changed; None: read them at builds only."""
        self._clock = clock
        self._boot = clock()
        self.seq = 0
        """The last log row applied: the view shows every commit up to it."""
        self.last_changed = self.started_at
        self.counts: Counter[str] = Counter()
        self._blocking: dict[str, set[int]] = {t: set() for t in BLOCKING_ALARMS}
        """Ids of the active alarms of each blocking type (a handful)."""
        self.elements_generation = -1
        """The watch generation the element rows were read at."""
        self._element_rows: list[tuple[ElementRow, int]] = []
        self._group = ""
        """The sharing group's state the element rows were encoded with."""
        self.types = TableRegion(
            oids["provsyncAlarmTypeEntry"], range(2, len(ALARM_TYPE_COLUMNS) + 1)
        )
        self.alarms = alarm_table(self.oids)
        self.log = TableRegion(oids["provsyncNotificationLogEntry"], range(2, len(LOG_COLUMNS) + 1))
        self.elements = TableRegion(
            oids["provsyncElementEntry"], range(2, len(ELEMENT_COLUMNS) + 1)
        )
        self.types.replace(
            [(i, values.alarm_type_row(t)) for i, t in enumerate(self.catalog, start=1)]
        )
        # The standard objects (agent.export.snmp.standard) sort before and after
        # PROVSYNC-MIB's regions: the view orders all of them by OID.
        self.view = MibView(
            [
                self._system_region(),
                self._agent_region(),
                self.types,
                self.alarms,
                self.log,
                self.elements,
                *standard,
            ]
        )

    # ------------------------------------------------------------------ regions
    def uptime_ticks(self) -> int:
        return int((self._clock() - self._boot) * 100) & 0xFFFFFFFF

    def _system_region(self) -> ScalarRegion:
        system = self.system
        # DisplayString (SIZE (0..255)): a long configured contact or location is cut.
        description = display_string(system.description)
        object_id = ber.oid(self.oids.root)
        contact, name = display_string(system.contact), display_string(system.name)
        location, services = display_string(system.location), ber.integer(72)
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
        version = values.text(__version__, values.SHORT_TEXT)  # SIZE (0..64)
        started = values.date_and_time(self.started_at)
        items: list[tuple[tuple[int, ...], Callable[[], bytes]]] = [
            (oids["provsyncAgentVersion"], lambda: version),
            (oids["provsyncAgentStartTime"], lambda: started),
            (oids["provsyncLastSequence"], lambda: values.gauge(self.seq)),
            (oids["provsyncActiveAlarms"], lambda: values.gauge(len(self.alarms))),
            (
                oids["provsyncActiveAlarmsLastChanged"],
                lambda: values.date_and_time(self.last_changed),
            ),
        ]
        names = ("Critical", "Major", "Minor", "Warning", "Indeterminate")
        for name, severity in zip(names, _COUNTED, strict=True):
            items.append((oids[f"provsyncActive{name}"], self._count_of(severity)))
        return ScalarRegion(items)

    def _count_of(self, severity: Severity) -> Callable[[], bytes]:
        return lambda: values.gauge(self.counts[severity])

    # ------------------------------------------------------------------ store reads
    def read_full(self) -> Snapshot:
        """Worker thread: the whole view from the store (mibread.read_snapshot)."""
        return read_snapshot(self.engine, self.catalog, self.oids, self.log_size, self.watch)

    def read_elements(self) -> ElementRows:
        """Worker thread (or the loop: the table is small): the element rows."""
        return read_elements(self.engine, self.watch)

    # ------------------------------------------------------------------ the event loop
    def install(self, snapshot: Snapshot) -> None:
        """Show ``snapshot`` (then replay the commits since it was started)."""
        self.alarms.adopt(snapshot.alarms)
        self.counts = snapshot.counts
        self._blocking = snapshot.blocking
        self.log.replace(snapshot.log)
        self.seq = snapshot.seq
        if snapshot.last_changed is not None:
            self.last_changed = snapshot.last_changed
        self.set_elements(snapshot.elements)
        self._group = ""  # the blocking alarms are new: encode the rows again
        self._encode_elements()

    def apply_commit(self, commit: Commit) -> bool:
        """Make the view show ``commit``; False (nothing changed) when the view missed
        the commits before it, and must be built again from the store.

        A commit the view already shows (in part or whole: replayed after a build) is
        applied again harmlessly: its alarm rows are set to their state at that commit,
        and the later commits, replayed after it, set theirs.
        """
        if commit.first_seq > self.seq + 1:
            return False
        group = self.group_state()
        for row in commit.alarms:
            self._set_alarm(row)
        for alarm_id in commit.purged:
            self._drop_alarm(alarm_id)
        # Only the rows the log table keeps are encoded: a commit larger than the table
        # (a batch of thousands) would encode rows the trim below drops at once.
        kept_from = max(self.seq, commit.last_seq - self.log_size)
        for note in commit.notifications:
            if note.alarm_id and note.seq > self.seq:
                self.last_changed = note.at
            if note.seq > kept_from:
                self.log.set_row(note.seq, log_cells(note))
        self.log.trim_to(self.log_size)
        self.seq = max(self.seq, commit.last_seq)
        if self.group_state() != group:
            self._encode_elements()
        return True

    def _set_alarm(self, row: AlarmRow) -> None:
        alarm_id = row["id"]
        if row["cleared"]:
            self._drop_alarm(alarm_id)
            return
        old = self.alarms.cell(alarm_id, _SEVERITY_COLUMN)
        if old is not None:
            self.counts[_SEVERITY_OF_CELL[old]] -= 1
        self.alarms.set_row(alarm_id, alarm_cells(row, self.catalog))
        self.counts[row["severity"]] += 1
        if (ids := self._blocking.get(row["type_id"])) is not None:
            ids.add(alarm_id)

    def _drop_alarm(self, alarm_id: int) -> None:
        old = self.alarms.cell(alarm_id, _SEVERITY_COLUMN)
        if old is None:
            return
        self.counts[_SEVERITY_OF_CELL[old]] -= 1
        self.alarms.remove(alarm_id)
        for ids in self._blocking.values():
            ids.discard(alarm_id)

    def group_state(self) -> str:
        """The sharing group's state, shown on every sharing element (docs/sharing.md)."""
        return group_state(
            bool(self._blocking[SYNC_REQUIRED]), bool(self._blocking[RECONCILE_REQUIRED])
        )

    def elements_stale(self) -> bool:
        """A commit changed elements or distributions since the rows were read."""
        return self.watch is not None and self.watch.generation != self.elements_generation

    def set_elements(self, elements: ElementRows) -> None:
        """Show element rows read at ``elements.generation`` (older reads are ignored)."""
        if elements.generation < self.elements_generation:
            return
        self.elements_generation = elements.generation
        self._element_rows = elements.rows
        self._group = ""
        self._encode_elements()

    def _encode_elements(self) -> None:
        group = self.group_state()
        if group == self._group:
            return
        self._group = group
        self.elements.replace(
            [
                (row.id, values.element_row(row, group if row.sharing else NOT_SHARING, errors))
                for row, errors in self._element_rows
            ]
        )
