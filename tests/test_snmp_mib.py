"""PROVSYNC-MIB: smilint level 4 clean, resolved by net-snmp, same OIDs as the agent."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent.export.snmp.mibtext import mib_text
from agent.export.snmp.oids import DEFAULT_ROOT, RELATIVE, MibOids
from tests.conftest import BIN
from tests.netsnmp import MIBS, run


def test_smilint_level_4_prints_nothing() -> None:
    result = run("smilint", "-l", "4", str(MIBS / "PROVSYNC-MIB.txt"))
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == ""


def test_every_agent_oid_is_the_mibs() -> None:
    """The agent's OIDs (agent.export.snmp.oids) resolve to the same numbers in the MIB."""
    names = sorted(RELATIVE)
    result = run("snmptranslate", "-On", *[f"PROVSYNC-MIB::{name}" for name in names])
    assert result.returncode == 0, result.stderr
    resolved = result.stdout.split()
    oids = MibOids()
    expected = ["." + ".".join(map(str, oids[name])) for name in names]
    assert resolved == expected


def test_active_alarm_columns_resolve() -> None:
    result = run("snmptranslate", "-Td", "PROVSYNC-MIB::provsyncAlarmSeverity")
    assert result.returncode == 0, result.stderr
    assert "ProvsyncSeverity" in result.stdout
    assert "read-only" in result.stdout
    table = run("snmptranslate", "-Tp", "PROVSYNC-MIB::provsyncActiveAlarmTable")
    for column in ("provsyncAlarmResource", "provsyncAlarmText", "provsyncAlarmRaisedTime"):
        assert column in table.stdout


def test_packaged_text_is_the_mibs_file() -> None:
    assert mib_text(DEFAULT_ROOT) == (MIBS / "PROVSYNC-MIB.txt").read_text()


def test_export_reroots_under_another_pen(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text('[snmp]\nenterprise_oid = "1.3.6.1.4.1.99999.42"\n')
    result = subprocess.run(
        [str(BIN / "provsync"), "--config", str(config), "mib", "export", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lint = run("smilint", "-l", "4", str(tmp_path / "PROVSYNC-MIB.txt"), mib_dir=tmp_path)
    assert lint.stdout == ""
    assert lint.stderr == ""
    where = run("snmptranslate", "-On", "PROVSYNC-MIB::provsyncAlarmSeverity", mib_dir=tmp_path)
    assert where.stdout.strip() == ".1.3.6.1.4.1.99999.42.1.3.1.6"


def test_export_refuses_a_root_outside_enterprises(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "provsync"), "mib", "export", "--out", str(tmp_path), "--root", "1.3.6.1.2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "enterprises" in result.stderr
