"""The SNMP view's cell encoders (values.py, spelled out for speed): the bytes of ber's
general helpers, the reference, at every boundary of their short forms; and every cell
fits the syntax PROVSYNC-MIB gives its column (texts cut on a character boundary with the
marker, never-empty identifiers, the DateAndTime of never)."""

from __future__ import annotations

import dataclasses
import struct
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from agent.alarms.catalog import Catalog
from agent.alarms.probable_cause import PROBABLE_CAUSES
from agent.alarms.records import NotificationKind
from agent.alarms.severity import Severity
from agent.export.snmp import ber, values
from agent.export.snmp.oids import (
    ACTIVE_ALARM_COLUMNS,
    ALARM_TYPE_COLUMNS,
    ELEMENT_COLUMNS,
    LOG_COLUMNS,
)
from tests import mib_syntax

ELLIPSIS = "\u2026"


def ref_cut(value: str, limit: int) -> str:
    """The truncation rule, character by character (the reference for values.fit)."""
    if len(value.encode("utf-8")) <= limit:
        return value
    kept = ""
    for char in value:
        if len((kept + char + ELLIPSIS).encode("utf-8")) > limit:
            break
        kept += char
    return kept + ELLIPSIS


def ref_text(value: str | None, limit: int = 255) -> bytes:
    return ber.octets(ref_cut(value or "", limit).encode("utf-8"))


def ref_date_and_time(value: datetime | None) -> bytes:
    if value is None:
        return ber.octets(b"\x00" * 8)
    utc = value.astimezone(UTC)
    return ber.octets(
        struct.pack(
            ">HBBBBBBcBB",
            utc.year,
            utc.month,
            utc.day,
            utc.hour,
            utc.minute,
            utc.second,
            utc.microsecond // 100_000,
            b"+",
            0,
            0,
        )
    )


NUMBERS = [
    -5,
    0,
    1,
    127,
    128,
    255,
    256,
    2**15,
    2**16 - 1,
    2**23,
    2**24,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**40,
]


@pytest.mark.parametrize("value", NUMBERS)
def test_gauge_and_counter(value: int) -> None:
    assert values.gauge(value) == ber.unsigned(min(max(value, 0), 2**32 - 1), ber.GAUGE32)
    assert values.unsigned(value) == values.gauge(value)
    if value >= 0:
        assert values.counter(value) == ber.unsigned(value & 0xFFFFFFFF, ber.COUNTER32)


TEXTS = [
    None,
    "",
    "a",
    "x" * 127,
    "x" * 128,
    "é" * 63,
    "é" * 64,
    "x" * 255,
    "x" * 256,
    "x" * 300,
    "x" * 8400,
    "é" * 127,
    "é" * 128,
    "é" * 200,
    "€" * 85,
    "€" * 86,
    "€" * 100,
    "🚨" * 64,
    "🚨" * 100,
    "a" + "🚨" * 100,
    "ab" + "€" * 100,
    "x" * 65535,
    "x" * 70000,
    "€" * 30000,
]


@pytest.mark.parametrize("value", TEXTS)
@pytest.mark.parametrize("limit", [255, 128, 64])
def test_text_is_cut_on_a_character_boundary_with_the_marker(value: str | None, limit: int) -> None:
    got = values.text(value, limit)
    assert got == ref_text(value, limit)
    _, start, end = ber.header(got, 0)
    content = got[start:end]
    assert len(content) <= limit
    decoded = content.decode("utf-8")  # strict: no character split at the cut
    full = value or ""
    if len(full.encode("utf-8")) <= limit:
        assert decoded == full
    else:
        assert decoded.endswith(ELLIPSIS)
        assert full.startswith(decoded[:-1])
        # Nothing more fits: one more character and the marker would pass the limit.
        kept = len(decoded) - 1
        assert len((full[: kept + 1] + ELLIPSIS).encode("utf-8")) > limit
    assert values.octets(value, limit) == content


def test_the_default_limit_is_snmp_admin_strings_255() -> None:
    assert values.text("x" * 300) == values.text("x" * 300, 255)
    content = values.octets("x" * 300)
    assert content == b"x" * 252 + "…".encode()
    assert len(content) == 255
    # An 8,400-octet resolution of multi-byte text: cut before the character at the cut.
    resolution = values.octets("a" + "→" * 2800)  # 1 + 8,400 octets
    assert resolution == b"a" + "→".encode() * 83 + "…".encode()
    assert len(resolution) == 253  # one more arrow would make 256


def test_identifiers_are_never_empty() -> None:
    for empty in (None, ""):
        assert values.identifier(empty) == ber.octets(b"-")
        assert values.identifier_octets(empty) == b"-"
    assert values.identifier("sync-failed") == ber.octets(b"sync-failed")
    assert values.identifier("é" * 40) == ref_text("é" * 40, 64)


@pytest.mark.parametrize(
    "value",
    [
        None,
        datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1999, 1, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_date_and_time(value: datetime | None) -> None:
    assert values.date_and_time(value) == ref_date_and_time(value)


def test_never_is_eight_zero_octets() -> None:
    assert values.date_and_time(None) == bytes.fromhex("04080000000000000000")
    assert values.date_and_time(None) == values.NEVER


def test_probable_cause_codes_are_ianas() -> None:
    for label, number in PROBABLE_CAUSES.items():
        assert values.probable_cause(label) == ber.integer(number)
    # Not IANA's (only stored rows older than the check can carry one), or none: other.
    for label in ("cabinetDoorOpen", "", None):
        assert values.probable_cause(label) == ber.integer(1024)
    assert mib_syntax.enumerations()["ProvsyncProbableCause"] == frozenset(PROBABLE_CAUSES.values())


def test_rows_cell_by_cell() -> None:
    alarm_type = Catalog().describe("element-unreachable")
    at = datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC)
    for state in ("none", "acknowledged", "unknown"):
        for severity in Severity:
            row = {
                "type_id": alarm_type.id,
                "resource": "cm1",
                "qualifier": "",
                "text": "t" * 200,
                "severity": severity.value,
                "raised_at": at,
                "changed_at": at,
                "count": 300,
                "operator_state": state,
                "ack_by": None,
                "raise_seq": 2**31,
                "resolution": alarm_type.resolution,
            }
            cells = values.active_alarm_row(row, alarm_type)
            assert len(cells) == len(ACTIVE_ALARM_COLUMNS) - 1
            assert cells[4] == ber.integer(int(severity.itu))
            assert cells[8] == cells[9] == ref_date_and_time(at)
            assert cells[10] == ber.unsigned(300, ber.COUNTER32)  # deprecated, same value
            assert cells[11] == ber.integer(values.OPERATOR_STATE_NUMBER.get(state, 1))
            assert cells[12] == ref_text(None)
            assert cells[13] == ber.unsigned(2**31, ber.GAUGE32)
            assert cells[7] == ref_text("t" * 200)
            assert cells[15] == ber.integer(PROBABLE_CAUSES["communicationsSubsystemFailure"])
            assert cells[16] == ber.unsigned(300, ber.GAUGE32)  # provsyncAlarmOccurrences
    for kind, number in values.NOTIFICATION_KIND_NUMBER.items():
        cells = values.log_row(at, NotificationKind(kind), 7, "sync-failed", "cm1", "major", "m", 0)
        assert cells == [
            ref_date_and_time(at),
            ber.integer(number),
            ber.unsigned(7, ber.GAUGE32),
            ref_text("sync-failed"),
            ref_text("cm1"),
            ber.integer(int(Severity.MAJOR.itu)),
            ref_text("m"),
            ber.unsigned(0, ber.GAUGE32),
        ]


def _check_row(columns: tuple[str, ...], cells: list[bytes]) -> None:
    """Every cell against its column's SYNTAX in the MIB (column 1 is the index)."""
    assert len(cells) == len(columns) - 1
    for name, cell in zip(columns[1:], cells, strict=True):
        mib_syntax.check(name, cell)


LONG = "Störung " + "é€🚨x" * 1000  # 8,008 characters, 10,009 octets
"""Longer than every limit, with 1- to 4-octet characters around every cut."""


def test_every_cell_fits_its_mib_syntax_long_and_empty() -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    catalog = Catalog()
    types = [*catalog]
    odd = dataclasses.replace(
        types[0], id="", name=LONG, probable_cause=LONG, description=LONG, clear_instructions=LONG
    )
    unknown_cause = dataclasses.replace(types[0], probable_cause="cabinetDoorOpen")
    for alarm_type in [*types, odd, unknown_cause]:
        _check_row(ALARM_TYPE_COLUMNS, values.alarm_type_row(alarm_type))
    cells = values.alarm_type_row(odd)
    assert cells[0] == ber.octets(b"-")
    assert cells[5] == ref_text(LONG, 64)
    assert cells[8] == ber.integer(1024)  # not IANA's: other
    for text, qualifier, ack_by, count in [
        (LONG, LONG, LONG, 2**40),
        ("x" * 300, "", None, 0),
        ("x" * 8400, "q", "é" * 100, 1),
        ("", "", "", 2**32 - 1),
    ]:
        row = {
            "type_id": odd.id,
            "resource": LONG,
            "qualifier": qualifier,
            "text": text,
            "severity": "major",
            "raised_at": at,
            "changed_at": at,
            "count": count,
            "operator_state": "acknowledged",
            "ack_by": ack_by,
            "raise_seq": 1,
            "resolution": "r" * 8400,
        }
        cells = values.active_alarm_row(row, odd)
        _check_row(ACTIVE_ALARM_COLUMNS, cells)
        assert cells[0] == ber.octets(b"-")  # empty type id
        assert cells[12] == ref_text(ack_by, 128)
    for name, kind, last_sync in [("", "", None), (LONG, LONG, at), ("cm1", "call-server", None)]:
        element = SimpleNamespace(name=name, type=kind, sync_state="never", last_sync_at=last_sync)
        cells = values.element_row(element, "sharing", 3)
        _check_row(ELEMENT_COLUMNS, cells)
        if last_sync is None:
            assert cells[4] == values.NEVER
    nameless = SimpleNamespace(name="", type="", sync_state="never", last_sync_at=None)
    assert values.element_row(nameless)[0] == ber.octets(b"-")
    for kind in NotificationKind:
        for type_id in ("", "sync-failed"):
            cells = values.log_row(at, kind, 2**32 - 1, type_id, LONG, "cleared", LONG, 5)
            _check_row(LOG_COLUMNS, cells)
    assert values.log_row(at, NotificationKind.EVENT, 0, "", "", "major", "", 0)[3] == (
        ber.octets(b"-")
    )
