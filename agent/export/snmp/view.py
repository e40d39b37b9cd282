"""The MIB view the command responder serves: sorted regions of pre-encoded values.

A region is a group of scalars or one conceptual table. Table cells are kept per row as
one bytes object (value TLVs of all columns behind a small offset header), so a walk
encodes only the OID of each varbind and copies its value; 100,000 alarms stay compact.
Rows are addressed by a single integer index, the shape of every PROVSYNC-MIB table;
indexes are kept in an ``array`` (8 bytes each, not a list of int objects).
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate

from agent.export.snmp import ber

_OFFSETS = struct.Struct("<HH")
_REF = struct.Struct("<H")

Varbind = tuple[tuple[int, ...], bytes]
"""(OID, encoded VarBind SEQUENCE)"""


def varbind(oid_body: bytes, value: bytes) -> bytes:
    return ber.tlv(ber.SEQUENCE, ber.tlv(ber.OBJECT_IDENTIFIER, oid_body) + value)


class ScalarRegion:
    """Scalars (instance ``.0``) whose values are computed when asked for."""

    def __init__(self, items: Sequence[tuple[tuple[int, ...], Callable[[], bytes]]]) -> None:
        ordered = sorted((((*oid, 0), value) for oid, value in items), key=lambda item: item[0])
        self.oids = [oid for oid, _ in ordered]
        self.values = [value for _, value in ordered]
        self.bodies = [ber.oid_body(oid) for oid in self.oids]
        self.first = self.oids[0]
        self.last = self.oids[-1]

    def get(self, oid: tuple[int, ...]) -> bytes | None:
        index = bisect.bisect_left(self.oids, oid)
        if index < len(self.oids) and self.oids[index] == oid:
            return self.values[index]()
        return None

    def is_object(self, oid: tuple[int, ...]) -> bool:
        return any(oid[: len(o) - 1] == o[:-1] for o in self.oids)

    def iter_from(self, oid: tuple[int, ...]) -> Iterator[Varbind]:
        for index in range(bisect.bisect_right(self.oids, oid), len(self.oids)):
            yield self.oids[index], varbind(self.bodies[index], self.values[index]())

    def iter_encoded(self, oid: tuple[int, ...]) -> Iterator[bytes]:
        for _, encoded in self.iter_from(oid):
            yield encoded


class TableRegion:
    """One table: rows by integer index, columns in ascending order.

    ``shared`` columns take few distinct values (those an alarm's type decides: its id,
    name, event type, probable cause): a row keeps a two-octet reference to the value,
    kept once for the table, instead of the value (70 octets less per active alarm).
    At most 65,536 distinct values per shared column.
    """

    def __init__(
        self, entry: tuple[int, ...], columns: Sequence[int], shared: Sequence[int] = ()
    ) -> None:
        self.entry = entry
        self.columns = list(columns)
        self._column_at = {column: i for i, column in enumerate(self.columns)}
        self._shared: dict[int, list[bytes]] = {self._column_at[c]: [] for c in shared}
        """Column position -> its distinct values, by reference number."""
        self._refs: dict[int, dict[bytes, bytes]] = {at: {} for at in self._shared}
        """Column position -> value -> its packed reference."""
        self._prefix = {c: ber.oid_body((*entry, c)) for c in self.columns}
        self.ids = array("q")
        self.rows: list[bytes] = []
        self.index_bodies: list[bytes] = []
        """subid(index) of each row, kept with the row: a walk encodes no integers."""
        self.first = (*entry, self.columns[0])
        self.last = (*entry, self.columns[-1], 0xFFFFFFFF)
        self._header = 2 * (len(self.columns) + 1)
        self._offsets = struct.Struct(f"<{len(self.columns) + 1}H")

    def __len__(self) -> int:
        return len(self.ids)

    def pack(self, values: Sequence[bytes]) -> bytes:
        if len(values) != len(self.columns):
            raise ValueError("one value per column")
        if self._shared:
            values = list(values)
            for at, known in self._shared.items():
                refs = self._refs[at]
                ref = refs.get(values[at])
                if ref is None:
                    ref = refs[values[at]] = _REF.pack(len(known))  # struct.error past 65,535
                    known.append(values[at])
                values[at] = ref
        offsets = self._offsets.pack(*accumulate(map(len, values), initial=self._header))
        return offsets + b"".join(values)

    def set_row(self, index: int, values: Sequence[bytes]) -> None:
        blob = self.pack(values)
        at = bisect.bisect_left(self.ids, index)
        if at < len(self.ids) and self.ids[at] == index:
            self.rows[at] = blob
        else:
            self.ids.insert(at, index)
            self.rows.insert(at, blob)
            self.index_bodies.insert(at, ber.subid(index))

    def remove(self, index: int) -> None:
        at = bisect.bisect_left(self.ids, index)
        if at < len(self.ids) and self.ids[at] == index:
            del self.ids[at]
            del self.rows[at]
            del self.index_bodies[at]

    def append(self, index: int, values: Sequence[bytes]) -> None:
        """Add a row after every other (building a table in index order: no search)."""
        if self.ids and index <= self.ids[-1]:
            raise ValueError("rows must be appended in ascending index order")
        self.ids.append(index)
        self.rows.append(self.pack(values))
        self.index_bodies.append(ber.subid(index))

    def adopt(self, other: TableRegion) -> None:
        """Show ``other``'s rows (built elsewhere, e.g. in a thread) instead of these."""
        if other.entry != self.entry or other.columns != self.columns:
            raise ValueError("not the same table")
        self.ids, self.rows, self.index_bodies = other.ids, other.rows, other.index_bodies
        self._shared, self._refs = other._shared, other._refs  # the rows' references

    def replace(self, rows: Sequence[tuple[int, Sequence[bytes]]]) -> None:
        ordered = sorted(rows, key=lambda row: row[0])
        self.ids = array("q", [index for index, _ in ordered])
        self.rows = [self.pack(values) for _, values in ordered]
        self.index_bodies = [ber.subid(index) for index in self.ids]

    def trim_to(self, size: int) -> None:
        """Keep the ``size`` highest indexes (the newest log entries)."""
        if len(self.ids) > size:
            cut = len(self.ids) - size
            del self.ids[:cut]
            del self.rows[:cut]
            del self.index_bodies[:cut]

    def _cell(self, row: int, column_at: int) -> bytes:
        blob = self.rows[row]
        at = 2 * column_at
        start, end = _OFFSETS.unpack_from(blob, at)
        known = self._shared.get(column_at)
        if known is not None:
            ref: int = _REF.unpack_from(blob, start)[0]
            return known[ref]
        return blob[start:end]

    def cell(self, index: int, column: int) -> bytes | None:
        column_at = self._column_at.get(column)
        if column_at is None:
            return None
        row = bisect.bisect_left(self.ids, index)
        if row < len(self.ids) and self.ids[row] == index:
            return self._cell(row, column_at)
        return None

    def get(self, oid: tuple[int, ...]) -> bytes | None:
        size = len(self.entry)
        if len(oid) != size + 2 or oid[:size] != self.entry:
            return None
        return self.cell(oid[size + 1], oid[size])

    def is_object(self, oid: tuple[int, ...]) -> bool:
        size = len(self.entry)
        return oid[:size] == self.entry and len(oid) > size and oid[size] in self._column_at

    def _start(self, oid: tuple[int, ...]) -> tuple[int, int] | None:
        """(column position, row position) of the first cell after ``oid``."""
        size = len(self.entry)
        if oid[:size] < self.entry or (len(oid) == size and oid[:size] == self.entry):
            return 0, 0
        if oid[:size] > self.entry:
            return None
        column = oid[size]
        rest = oid[size + 1 :]
        column_at = bisect.bisect_left(self.columns, column)
        if column_at < len(self.columns) and self.columns[column_at] == column and rest:
            return column_at, bisect.bisect_right(self.ids, rest[0])
        return column_at, 0

    def iter_encoded(self, oid: tuple[int, ...]) -> Iterator[bytes]:
        """The encoded varbinds after ``oid``: the GETBULK hot loop, encoding inlined."""
        start = self._start(oid)
        if start is None:
            return
        column_at, first_row = start
        rows, index_bodies = self.rows, self.index_bodies
        count = len(rows)
        unpack = _OFFSETS.unpack_from
        ref_of = _REF.unpack_from
        for at in range(column_at, len(self.columns)):
            prefix = self._prefix[self.columns[at]]
            offset = 2 * at
            known = self._shared.get(at)
            for position in range(first_row if at == column_at else 0, count):
                blob = rows[position]
                begin, end = unpack(blob, offset)
                name = prefix + index_bodies[position]
                value = blob[begin:end] if known is None else known[ref_of(blob, begin)[0]]
                body = ber.tlv(ber.OBJECT_IDENTIFIER, name) + value
                size = len(body)
                if size < 0x80:
                    yield bytes((ber.SEQUENCE, size)) + body
                else:
                    yield bytes((ber.SEQUENCE,)) + ber.length(size) + body
            first_row = 0

    def iter_from(self, oid: tuple[int, ...]) -> Iterator[Varbind]:
        start = self._start(oid)
        if start is None:
            return
        column_at, first_row = start
        for at in range(column_at, len(self.columns)):
            column = self.columns[at]
            prefix = self._prefix[column]
            for position in range(first_row if at == column_at else 0, len(self.ids)):
                index = self.ids[position]
                value = self._cell(position, at)
                yield (*self.entry, column, index), varbind(prefix + ber.subid(index), value)


Region = ScalarRegion | TableRegion


class MibView:
    """All regions in OID order; GET and GETNEXT over them."""

    def __init__(self, regions: Sequence[Region]) -> None:
        self.regions = sorted(regions, key=lambda region: region.first)

    def get(self, oid: tuple[int, ...]) -> bytes:
        """The value TLV, or noSuchInstance / noSuchObject."""
        for region in self.regions:
            value = region.get(oid)
            if value is not None:
                return value
        if any(region.is_object(oid) for region in self.regions):
            return ber.NO_SUCH_INSTANCE_VALUE
        return ber.NO_SUCH_OBJECT_VALUE

    def iter_from(self, oid: tuple[int, ...]) -> Iterator[Varbind]:
        """Every varbind after ``oid``, in lexicographic order."""
        for region in self.regions:
            if region.last < oid and not _is_prefix(oid, region.last):
                continue
            yield from region.iter_from(oid)

    def iter_encoded(self, oid: tuple[int, ...]) -> Iterator[bytes]:
        """Like :meth:`iter_from`, encoded varbinds only (no OID tuples built)."""
        for region in self.regions:
            if region.last < oid and not _is_prefix(oid, region.last):
                continue
            yield from region.iter_encoded(oid)


def _is_prefix(oid: tuple[int, ...], last: tuple[int, ...]) -> bool:
    return oid[: len(last)] == last
