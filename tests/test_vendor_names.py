"""Every alarm and event type names its vendor counterpart (issue 14, item 13): the name a
NOC trained on the vendors' consoles knows, and the product and document it comes from,
in the catalog (CLI, control API), PROVSYNC-MIB and docs/alarms.md; types with none say
so."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.alarms.catalog import BUILTIN_TYPES, Catalog
from tests import forked
from tests.conftest import AgentProcess
from tests.netsnmp import MIBS, run

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT.parent / "shared" / "seeds"
FTP = "flow-through-provisioning-events-and-alarms.txt"
SMGR = "system-manager-synchronization.txt"

# type id -> (vendor name, product); None: no vendor counterpart. Written out here so that
# a change of a mapping is a deliberate one.
EXPECTED: dict[str, tuple[str, str] | None] = {
    "ftp-inactive": ("Flow Through Provisioning Inactive", "MiCollab"),
    "sync-required": ("Sync Required", "MiCollab"),
    "sync-reconcile-required": ("Sync Reconcile Required", "MiCollab"),
    "distribution-errors": ("SDS Distribution Errors", "MiCollab"),
    "element-updated-activation-required": ("NuPoint UM Network Element Updated", "MiCollab"),
    "auth-failed-incorrect": (
        "MiTAI Authentication Failed for <MiVB IP Address> - Incorrect Username/Password",
        "MiCollab",
    ),
    "auth-failed-missing": (
        "MiTAI Authentication Failed for <MiVB IP Address> - Username/Password not provided",
        "MiCollab",
    ),
    "element-unreachable": None,
    "sync-failed": None,
    "init-sync-required": None,
    "exporter-backlog": None,
    "sharing-started": ("Starting Sharing from a MiVoice Business server", "MiCollab"),
    "sharing-refused": ("SDS Sharing could not be started", "MiCollab"),
    "user-sync-started": (
        "User Sync Started or Completed from a MiVoice Business server",
        "MiCollab",
    ),
    "user-sync-completed": (
        "User Sync Started or Completed from a MiVoice Business server",
        "MiCollab",
    ),
    "device-data-notification": ("Device Data Notification Started or Completed", "MiCollab"),
    "device-data-sync-started": ("Device Data Synchronization Started or Completed", "MiCollab"),
    "device-data-sync-completed": (
        "Device Data Synchronization Started or Completed",
        "MiCollab",
    ),
    "update-rejected": ("Update Rejected", "MiCollab"),
    "init-sync-started": ("Initializing synchronization", "System Manager"),
    "init-sync-completed": ("Initializing synchronization", "System Manager"),
    "init-sync-failed": ("Initializing synchronization", "System Manager"),
    "incremental-sync-started": ("Incremental synchronization", "System Manager"),
    "incremental-sync-completed": ("Incremental synchronization", "System Manager"),
    "incremental-sync-failed": ("Incremental synchronization", "System Manager"),
    "sync-escalated": None,
    "force-init-sync": ("Force initialize data synchronization", "System Manager"),
    "reconcile-completed": None,
    "distribution-retried": None,
    "distribution-deleted": None,
    "agent-started": None,
    "agent-stopping": None,
    "heartbeat": None,
    "test": None,
    "export-loss": None,
    "export-gap": None,
    "element-emptied": None,
    "leadership-taken": None,
    "cluster-member-lost": None,
}


def _mapping(alarm_type: Any) -> tuple[str, str] | None:
    vendor = alarm_type.vendor
    return None if vendor is None else (vendor.name, vendor.product)


def test_every_builtin_type_names_its_vendor_counterpart_or_none() -> None:
    assert {t.id: _mapping(t) for t in BUILTIN_TYPES} == EXPECTED
    for alarm_type in BUILTIN_TYPES:
        if alarm_type.vendor is not None:
            assert alarm_type.vendor.document, alarm_type.id


@pytest.mark.parametrize("document", [FTP, SMGR])
def test_vendor_names_are_the_documents_own_words(document: str) -> None:
    """Each name is spelled as its document spells it, so a NOC can search for it."""
    path = SEEDS / document
    if not path.is_file():
        pytest.skip(f"the vendor documents are not at {SEEDS}")
    text = " ".join(path.read_text().split())
    named = [t.vendor for t in BUILTIN_TYPES if t.vendor is not None]
    titles = {v.document for v in named}
    assert len(titles) == 2
    first_line = path.read_text().splitlines()[0]
    (title,) = [t for t in titles if t in first_line]
    for vendor in named:
        if vendor.document == title:
            assert vendor.name in text, vendor.name


def test_site_types_have_no_vendor_counterpart() -> None:
    from agent.alarms.definitions import AlarmType, EventType, Kind
    from agent.alarms.severity import Severity

    site = AlarmType(
        "site-door", "Door Open", Kind.ALARM, Severity.WARNING, EventType.OTHER, "other", "", ""
    )
    assert Catalog([site]).get("site-door").to_dict()["vendor"] is None


def test_catalog_cli_and_api_show_the_vendor_name(agent: AgentProcess) -> None:
    listed = json.loads(agent.cli("catalog", "--json").stdout)
    by_id = {t["id"]: t for t in listed}
    errors = by_id["distribution-errors"]["vendor"]
    assert errors == {
        "name": "SDS Distribution Errors",
        "product": "MiCollab",
        "document": "Flow Through Provisioning - Events and Alarms",
    }
    assert by_id["element-unreachable"]["vendor"] is None
    assert by_id["force-init-sync"]["vendor"]["product"] == "System Manager"
    with agent.http() as http:
        assert http.get("/api/v1/catalog").json() == listed

    wide = {**agent.env(), "COLUMNS": "250"}  # each name whole on its row
    table = " ".join(forked.run(["catalog"], env=wide, cwd=agent.root).stdout.split())
    assert "vendor name" in table
    assert "SDS Distribution Errors (MiCollab)" in table
    assert "NuPoint UM Network Element Updated (MiCollab)" in table
    assert "Initializing synchronization (System Manager)" in table
    # One "none" per type without a counterpart, in the vendor column.
    nones = sum(1 for v in EXPECTED.values() if v is None)
    assert table.count("no vendor counterpart") == nones


def _mib_rows() -> dict[int, tuple[str, str | None, str | None]]:
    text = (MIBS / "PROVSYNC-MIB.txt").read_text()
    start = text.index("provsyncAlarmTypeEntry OBJECT-TYPE")
    description = " ".join(text[start : text.index("::=", start)].split())
    rows = re.findall(r"(\d+) ([a-z0-9-]+): (?:'([^']*)' \(([^)]*)\)|none)", description)
    return {int(i): (t, name or None, product or None) for i, t, name, product in rows}


def _mib_block() -> str:
    """The rows as the MIB writes them (to paste there when a type is appended)."""
    lines = []
    for index, alarm_type in enumerate(BUILTIN_TYPES, start=1):
        vendor = alarm_type.vendor
        named = f"'{vendor.name}' ({vendor.product})" if vendor else "none"
        lines.append(
            textwrap.fill(
                f"{index} {alarm_type.id}: {named}",
                width=68,
                initial_indent=" " * 11,
                subsequent_indent=" " * 13,
                break_on_hyphens=False,
                break_long_words=False,
            )
        )
    return "\n".join(lines)


def test_the_mib_lists_each_builtin_row_with_its_vendor_name() -> None:
    """The alarm type table is indexed by position: the MIB names each built-in row (index,
    id, vendor name and product, or none) as the catalog has it."""
    expected = {
        index: (t.id, *((t.vendor.name, t.vendor.product) if t.vendor else (None, None)))
        for index, t in enumerate(BUILTIN_TYPES, start=1)
    }
    assert _mib_rows() == expected, (
        "mibs/PROVSYNC-MIB.txt, provsyncAlarmTypeEntry's DESCRIPTION should list:\n" + _mib_block()
    )
    described = run("snmptranslate", "-Td", "PROVSYNC-MIB::provsyncAlarmTypeEntry")
    assert described.returncode == 0, described.stderr
    assert "SDS Distribution Errors" in " ".join(described.stdout.split())


def test_docs_list_each_type_with_its_vendor_name() -> None:
    text = (ROOT / "docs" / "alarms.md").read_text()
    rows = {
        cells[0].strip("` "): cells
        for line in text.splitlines()
        if line.startswith("| `")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for alarm_type in BUILTIN_TYPES:
        assert alarm_type.id in rows, alarm_type.id
        cells = [c.strip("`") for c in rows[alarm_type.id]]
        if alarm_type.vendor is None:
            assert "no vendor counterpart" in cells, alarm_type.id
        else:
            assert alarm_type.vendor.name in cells, alarm_type.id
            assert alarm_type.vendor.product in " ".join(cells), alarm_type.id
