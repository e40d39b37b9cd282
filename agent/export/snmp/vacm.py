"""View-based access control for SNMPv3 users: read-only, plus notify for targets."""

from __future__ import annotations

from typing import Any

from pysnmp.entity import config as pysnmp_config

from agent.export.snmp.oids import SYS_DESCR

READ_VIEW = "provsync-read"
NOTIFY_VIEW = "provsync-notify"
SYSTEM_GROUP = SYS_DESCR[:-2]
USM = 3


def configure_views(snmp_engine: Any, root: tuple[int, ...]) -> None:
    pysnmp_config.add_context(snmp_engine, b"")
    # Read: the PROVSYNC subtree and SNMPv2-MIB's system group, nothing else.
    pysnmp_config.add_vacm_view(snmp_engine, READ_VIEW, "included", root, b"")
    pysnmp_config.add_vacm_view(snmp_engine, READ_VIEW, "included", SYSTEM_GROUP, b"")
    pysnmp_config.add_vacm_view(snmp_engine, NOTIFY_VIEW, "included", (1, 3, 6), b"")


def grant(snmp_engine: Any, user: str, level: str) -> None:
    """Read (no write view at all) and notify access for one USM user at ``level``."""
    (security_level_type,) = snmp_engine.get_mib_builder().import_symbols(
        "SNMP-FRAMEWORK-MIB", "SnmpSecurityLevel"
    )
    group = f"provsync-{user}"
    pysnmp_config.add_vacm_group(snmp_engine, group, USM, user)
    pysnmp_config.add_vacm_access(
        snmp_engine,
        group,
        b"",
        USM,
        security_level_type(level),
        "exact",
        READ_VIEW,
        "",
        NOTIFY_VIEW,
    )
