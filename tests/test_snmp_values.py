"""The SNMP view's cell encoders (values.py, spelled out for speed) give the bytes of
ber's general helpers, the reference, at every boundary of their short forms."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.alarms.catalog import Catalog
from agent.alarms.records import NotificationKind
from agent.alarms.severity import Severity
from agent.export.snmp import ber, values


def ref_text(value: str | None) -> bytes:
    return ber.octets((value or "").encode("utf-8")[: values.MAX_STRING])


def ref_date_and_time(value: datetime | None) -> bytes:
    if value is None:
        return ber.octets(b"")
    utc = value.astimezone(UTC)
    return ber.octets(struct.pack(">HBBBBBBcBB", utc.year, utc.month, utc.day, utc.hour,
                                  utc.minute, utc.second, utc.microsecond // 100_000, b"+",
                                  0, 0))  # fmt: skip


NUMBERS = [-5, 0, 1, 127, 128, 255, 256, 2**15, 2**16 - 1, 2**23, 2**24, 2**31 - 1, 2**31,
           2**32 - 1, 2**32, 2**40]  # fmt: skip


@pytest.mark.parametrize("value", NUMBERS)
def test_gauge_and_counter(value: int) -> None:
    assert values.gauge(value) == ber.unsigned(min(max(value, 0), 2**32 - 1), ber.GAUGE32)
    if value >= 0:
        assert values.counter(value) == ber.unsigned(value & 0xFFFFFFFF, ber.COUNTER32)


@pytest.mark.parametrize(
    "value",
    [None, "", "a", "x" * 127, "x" * 128, "é" * 63, "é" * 64, "x" * 65535, "x" * 70000,
     "€" * 30000],
)  # fmt: skip
def test_text(value: str | None) -> None:
    assert values.text(value) == ref_text(value)


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


def test_rows_cell_by_cell() -> None:
    alarm_type = Catalog().describe("element-unreachable")
    at = datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC)
    for state in ("none", "acknowledged", "unknown"):
        for severity in Severity:
            row = {
                "type_id": alarm_type.id, "resource": "cm1", "qualifier": "", "text": "t" * 200,
                "severity": severity.value, "raised_at": at, "changed_at": at, "count": 300,
                "operator_state": state, "ack_by": None, "raise_seq": 2**31,
                "resolution": alarm_type.resolution,
            }  # fmt: skip
            cells = values.active_alarm_row(row, alarm_type)
            assert cells[4] == ber.integer(int(severity.itu))
            assert cells[8] == cells[9] == ref_date_and_time(at)
            assert cells[10] == ber.unsigned(300, ber.COUNTER32)
            assert cells[11] == ber.integer(values.OPERATOR_STATE_NUMBER.get(state, 1))
            assert cells[12] == ref_text(None)
            assert cells[13] == ber.unsigned(2**31, ber.GAUGE32)
            assert cells[7] == ref_text("t" * 200)
    for kind, number in values.NOTIFICATION_KIND_NUMBER.items():
        cells = values.log_row(at, NotificationKind(kind), 7, "sync-failed", "cm1", "major",
                               "m", 0)  # fmt: skip
        assert cells == [
            ref_date_and_time(at), ber.integer(number), ber.unsigned(7, ber.GAUGE32),
            ref_text("sync-failed"), ref_text("cm1"), ber.integer(int(Severity.MAJOR.itu)),
            ref_text("m"), ber.unsigned(0, ber.GAUGE32),
        ]  # fmt: skip
