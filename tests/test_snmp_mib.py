"""PROVSYNC-MIB: smilint level 6 clean (exports under other roots and names too),
resolved by net-snmp, same OIDs as the agent, the conformance of revision 202612020000Z."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from agent.alarms.probable_cause import PROBABLE_CAUSES
from agent.export.snmp.mibtext import check_module_name, default_module_name, mib_text
from agent.export.snmp.oids import DEFAULT_ROOT, NOTIFY_OBJECTS, RELATIVE, MibOids
from tests.conftest import BIN
from tests.netsnmp import MIBS, base_mibs, env, run, tool

MIB = MIBS / "PROVSYNC-MIB.txt"


def _lint(path: Path, mib_dir: Path = MIBS) -> subprocess.CompletedProcess[str]:
    return run("smilint", "-l", "6", str(path), mib_dir=mib_dir)


def test_smilint_level_6_prints_nothing() -> None:
    result = _lint(MIB)
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == ""


def test_the_module_is_ascii_and_in_a_new_revision() -> None:
    raw = MIB.read_bytes()
    assert raw.isascii()  # SMIv2 modules are ASCII (smilint refuses other octets)
    text = raw.decode()
    assert 'LAST-UPDATED "202612070000Z"' in text
    assert text.index('REVISION "202612070000Z"') < text.index('REVISION "202612040000Z"')
    assert text.index('REVISION "202612040000Z"') < text.index('REVISION "202612020000Z"')
    assert text.index('REVISION "202612020000Z"') < text.index('REVISION "202611220000Z"')
    # No implicit node: the MODULE-IDENTITY hangs below a node the module defines.
    assert "::= { enterprises 32473 1 }" not in text
    assert "provsyncEnterprise OBJECT IDENTIFIER ::= { enterprises 32473 }" in text


def test_every_agent_oid_is_the_mibs() -> None:
    """The agent's OIDs (agent.export.snmp.oids) resolve to the same numbers in the MIB."""
    names = sorted(RELATIVE)
    assert {"provsyncAlarmOccurrences", "provsyncNotifyAckBy"} <= set(names)
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
    for column in (
        "provsyncAlarmResource",
        "provsyncAlarmText",
        "provsyncAlarmRaisedTime",
        "provsyncAlarmProbableCauseCode",
        "provsyncAlarmOccurrences",
    ):
        assert column in table.stdout


def _described(name: str) -> str:
    result = run("snmptranslate", "-Td", f"PROVSYNC-MIB::{name}")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("name", "units"),
    [
        ("provsyncActiveAlarms", "alarms"),
        ("provsyncActiveCritical", "alarms"),
        ("provsyncAlarmOccurrences", "occurrences"),
        ("provsyncElementDistributionErrors", "rejected updates"),
    ],
)
def test_counts_have_units(name: str, units: str) -> None:
    assert f'UNITS\t\t"{units}"' in _described(name)


def test_alarm_count_is_deprecated_for_occurrences() -> None:
    old = _described("provsyncAlarmCount")
    assert "Counter32" in old
    assert "STATUS\tdeprecated" in old
    new = _described("provsyncAlarmOccurrences")
    assert "Unsigned32" in new
    assert "STATUS\tcurrent" in new
    text = MIB.read_text()
    current_group = text[text.index("provsyncAlarmGroup2 OBJECT-GROUP") :]
    current_group = current_group[: current_group.index("}")]
    assert "provsyncAlarmCount" not in current_group
    assert "provsyncAlarmOccurrences" in current_group
    compliance = text[text.index("provsyncCompliance2 MODULE-COMPLIANCE") :]
    assert "STATUS current" in compliance[:60]


def test_probable_cause_tc_is_ianas_list() -> None:
    text = MIB.read_text()
    body = text[text.index("ProvsyncProbableCause ::= TEXTUAL-CONVENTION") :]
    body = body[body.index("SYNTAX INTEGER {") : body.index("}")]
    assert dict(re.findall(r"(\w+)\((\d+)\)", body)) == {
        label: str(number) for label, number in PROBABLE_CAUSES.items()
    }
    for name in (
        "provsyncAlarmTypeProbableCauseCode",
        "provsyncAlarmProbableCauseCode",
        "provsyncNotifyProbableCauseCode",
    ):
        assert "ProvsyncProbableCause" in _described(name)
    code = run("snmptranslate", "-On", "PROVSYNC-MIB::provsyncAlarmTypeProbableCauseCode")
    assert code.stdout.strip() == ".1.3.6.1.4.1.32473.1.1.2.1.10"


def test_notifications_keep_their_objects_and_name_the_appended_ones() -> None:
    """The OBJECTS clauses are those of revision 202611220000Z (position-mapped receivers
    keep working); the appended objects are in a current group and each DESCRIPTION."""
    text = MIB.read_text()
    raised = _described("provsyncAlarmRaised")
    objects = raised[raised.index("OBJECTS") : raised.index("}")]
    assert re.findall(r"provsync\w+", objects) == [*NOTIFY_OBJECTS[:10], "provsyncNotifyResolution"]
    for name, appended in [
        (
            "provsyncAlarmRaised",
            "provsyncNotifyQualifier, provsyncNotifyProbableCauseCode, "
            "provsyncNotifyOperatorState and provsyncNotifyAckBy",
        ),
        (
            "provsyncAlarmChanged",
            "provsyncNotifyQualifier, provsyncNotifyProbableCauseCode, "
            "provsyncNotifyOperatorState and provsyncNotifyAckBy",
        ),
        ("provsyncAlarmCleared", "provsyncNotifyQualifier and provsyncNotifyProbableCauseCode"),
        ("provsyncEvent", "provsyncNotifyQualifier and provsyncNotifyProbableCauseCode"),
    ]:
        start = text.index(f"{name} NOTIFICATION-TYPE")
        description = " ".join(text[start : text.index("::=", start)].split())
        assert appended in description, name
    group = text[text.index("provsyncNotifyGroup2 OBJECT-GROUP") :]
    group = group[: group.index("}")]
    assert re.findall(r"provsyncNotify\w+", group[group.index("{") :]) == list(NOTIFY_OBJECTS[12:])


def test_packaged_text_is_the_mibs_file() -> None:
    assert mib_text(DEFAULT_ROOT) == MIB.read_text()
    assert mib_text(DEFAULT_ROOT, "PROVSYNC-MIB") == MIB.read_text()


def _export(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    head = [str(BIN / "provsync")] + (["--config", str(config)] if config else [])
    return subprocess.run(
        [*head, "mib", "export", *args], capture_output=True, text=True, timeout=60
    )


def test_export_reroots_under_another_pen_under_its_own_name(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text('[snmp]\nenterprise_oid = "1.3.6.1.4.1.99999.42"\n')
    result = _export("--out", str(tmp_path), config=config)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "PROVSYNC-99999-42-MIB.txt"
    assert str(path) in result.stdout
    lint = _lint(path, mib_dir=tmp_path)
    assert lint.stdout == ""
    assert lint.stderr == ""
    where = run(
        "snmptranslate", "-On", "PROVSYNC-99999-42-MIB::provsyncAlarmSeverity", mib_dir=tmp_path
    )
    assert where.stdout.strip() == ".1.3.6.1.4.1.99999.42.1.3.1.6"


@pytest.mark.parametrize(
    "root",
    [
        (1, 3, 6, 1, 4, 1, 99999, 42),
        (1, 3, 6, 1, 4, 1, 64000),
        (1, 3, 6, 1, 4, 1, 99999, 7, 300, 2),
        (1, 3, 6, 1, 4, 1, 32473, 1, 5),
    ],
)
def test_an_export_under_any_root_is_smilint_clean(tmp_path: Path, root: tuple[int, ...]) -> None:
    name = default_module_name(root)
    assert name != "PROVSYNC-MIB"
    (tmp_path / f"{name}.txt").write_text(mib_text(root))
    lint = _lint(tmp_path / f"{name}.txt", mib_dir=tmp_path)
    assert (lint.stdout, lint.stderr) == ("", "")
    where = run(
        "snmptranslate",
        "-On",
        f"{name}::provsyncMIB",
        f"{name}::provsyncNotifyAckBy",
        mib_dir=tmp_path,
    )
    assert where.stdout.split() == [
        "." + ".".join(map(str, root)),
        "." + ".".join(map(str, (*root, 1, 6, 16))),
    ]


def test_two_sites_exports_load_next_to_the_default_module(tmp_path: Path) -> None:
    """The default module and a site's export, loaded together: each name resolves under
    its own root (one NMS, two agents)."""
    result = _export(
        "--out", str(tmp_path), "--root", "1.3.6.1.4.1.99999.7", "--module", "SITE-B-PROVSYNC-MIB"
    )
    assert result.returncode == 0, result.stderr
    lint = _lint(tmp_path / "SITE-B-PROVSYNC-MIB.txt", mib_dir=tmp_path)
    assert (lint.stdout, lint.stderr) == ("", "")
    variables = env(tmp_path)
    variables["MIBDIRS"] = f"{base_mibs()}:{MIBS}:{tmp_path}"
    variables["MIBS"] = "+PROVSYNC-MIB:SITE-B-PROVSYNC-MIB"
    both = subprocess.run(
        [
            tool("snmptranslate"),
            "-On",
            "PROVSYNC-MIB::provsyncAlarmText",
            "SITE-B-PROVSYNC-MIB::provsyncAlarmText",
            "SITE-B-PROVSYNC-MIB::provsyncAlarmRaised",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=variables,
    )
    assert both.returncode == 0, both.stderr
    assert both.stderr == ""
    assert both.stdout.split() == [
        ".1.3.6.1.4.1.32473.1.1.3.1.9",
        ".1.3.6.1.4.1.99999.7.1.3.1.9",
        ".1.3.6.1.4.1.99999.7.0.1",
    ]


def test_export_at_the_default_root_is_the_mibs_file(tmp_path: Path) -> None:
    result = _export("--out", str(tmp_path), "--root", ".".join(map(str, DEFAULT_ROOT)))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "PROVSYNC-MIB.txt").read_text() == MIB.read_text()


@pytest.mark.parametrize(
    "name",
    [
        "provsync-mib",
        "PROVSYNC--MIB",
        "PROVSYNC-MIB-",
        "1PROVSYNC",
        "PROV_SYNC",
        "",
        "P" * 65,
        "PROVSYNC MIB",
        "PRÖVSYNC-MIB",
    ],
)
def test_a_bad_module_name_exits_2_in_one_line(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        check_module_name(name)
    result = _export("--out", str(tmp_path), "--root", "1.3.6.1.4.1.99999", "--module", name)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "module name" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["A", "SITE-B-PROVSYNC-MIB", "X1-2-3", "Ab9"])
def test_good_module_names(name: str) -> None:
    assert check_module_name(name) == name


def test_export_refuses_a_root_outside_enterprises(tmp_path: Path) -> None:
    result = _export("--out", str(tmp_path), "--root", "1.3.6.1.2")
    assert result.returncode == 2
    assert "enterprises" in result.stderr
