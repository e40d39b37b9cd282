"""Severity conversion (the table of docs/alarms.md) and the alarm inventory, each written
out here so that a change of the built-in catalog is a deliberate one."""

from __future__ import annotations

import pytest

from agent.alarms.catalog import BUILTIN_TYPES, AlarmType, Catalog, EventType, Kind
from agent.alarms.severity import ItuPerceivedSeverity, Severity, SyslogSeverity
from agent.errors import UnknownAlarmType

# internal -> (ITU perceived severity number, syslog severity number), from docs/alarms.md.
DESIGN_TABLE = {
    "critical": (3, 1),
    "major": (4, 2),
    "minor": (5, 3),
    "warning": (6, 4),
    "indeterminate": (2, 5),
    "cleared": (1, 5),
}


@pytest.mark.parametrize(("name", "expected"), DESIGN_TABLE.items())
def test_severity_maps_as_design_says(name: str, expected: tuple[int, int]) -> None:
    severity = Severity(name)
    assert (int(severity.itu), int(severity.syslog)) == expected


def test_every_severity_is_in_the_table() -> None:
    assert {s.value for s in Severity} == set(DESIGN_TABLE)


def test_itu_and_syslog_names() -> None:
    assert Severity.CRITICAL.itu is ItuPerceivedSeverity.CRITICAL
    assert Severity.CRITICAL.syslog is SyslogSeverity.ALERT
    assert Severity.CLEARED.syslog is SyslogSeverity.NOTICE


def test_severity_order_for_filters() -> None:
    order = ["cleared", "indeterminate", "warning", "minor", "major", "critical"]
    ranks = [Severity(n).rank for n in order]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    assert Severity.MAJOR.at_least(Severity.MINOR)
    assert not Severity.WARNING.at_least(Severity.MINOR)


# (type id, default severity) of every built-in alarm type, as the design lists them.
DESIGN_ALARMS = {
    "ftp-inactive": "minor",
    "sync-required": "minor",
    "sync-reconcile-required": "minor",
    "distribution-errors": "minor",
    "element-updated-activation-required": "minor",
    "auth-failed-incorrect": "critical",
    "auth-failed-missing": "critical",
    "element-unreachable": "major",
    "sync-failed": "major",
    "init-sync-required": "minor",
    "exporter-backlog": "warning",
    "export-loss": "major",
    "element-emptied": "major",
    "cluster-member-lost": "major",
}

DESIGN_EVENTS = {
    "sharing-started": "indeterminate",
    "sharing-refused": "minor",
    "user-sync-started": "indeterminate",
    "user-sync-completed": "indeterminate",
    "device-data-notification": "indeterminate",
    "device-data-sync-started": "indeterminate",
    "device-data-sync-completed": "indeterminate",
    "update-rejected": "minor",
    "init-sync-started": None,
    "init-sync-completed": None,
    "init-sync-failed": None,
    "incremental-sync-started": None,
    "incremental-sync-completed": None,
    "incremental-sync-failed": None,
    "sync-escalated": None,
    "force-init-sync": None,
    "reconcile-completed": None,
    "distribution-retried": None,
    "distribution-deleted": None,
    "export-gap": "major",
    "agent-started": None,
    "agent-stopping": None,
    "heartbeat": None,
    "test": None,
    "leadership-taken": None,
}


@pytest.mark.parametrize(("type_id", "severity"), DESIGN_ALARMS.items())
def test_catalog_alarm_rows(type_id: str, severity: str) -> None:
    alarm_type = Catalog().get(type_id)
    assert alarm_type.kind is Kind.ALARM
    assert alarm_type.severity.value == severity
    assert alarm_type.name
    assert alarm_type.description
    assert alarm_type.clear_instructions
    assert alarm_type.probable_cause
    assert alarm_type.resolution, "every alarm says where it is fixed"


@pytest.mark.parametrize(("type_id", "severity"), DESIGN_EVENTS.items())
def test_catalog_event_rows(type_id: str, severity: str | None) -> None:
    event_type = Catalog().get(type_id)
    assert event_type.kind is Kind.EVENT
    assert event_type.name
    assert event_type.description
    if severity is not None:
        assert event_type.severity.value == severity


def test_catalog_has_nothing_undocumented() -> None:
    assert {t.id for t in BUILTIN_TYPES} == set(DESIGN_ALARMS) | set(DESIGN_EVENTS)
    assert len({t.id for t in BUILTIN_TYPES}) == len(BUILTIN_TYPES)


def test_catalog_to_dict_is_plain_json() -> None:
    row = Catalog().get("sync-failed").to_dict()
    assert row["kind"] == "alarm"
    assert row["severity"] == "major"
    assert row["event_type"] == "processingErrorAlarm"


def test_site_types_join_but_cannot_shadow() -> None:
    site = AlarmType(
        "site-door",
        "Door Open",
        Kind.ALARM,
        Severity.MINOR,
        EventType.ENVIRONMENTAL_ALARM,
        "enclosureDoorOpen",
        "d",
        "c",
        builtin=False,
    )
    catalog = Catalog([site])
    assert catalog.get("site-door") is site
    assert len(catalog) == len(BUILTIN_TYPES) + 1
    clash = AlarmType(
        "sync-failed", "x", Kind.ALARM, Severity.MINOR, EventType.OTHER, "other", "", ""
    )
    with pytest.raises(ValueError, match="built in"):
        Catalog([clash])
    with pytest.raises(UnknownAlarmType, match="no-such"):
        catalog.get("no-such")
