"""Running net-snmp tools and smilint from tests, with the base MIB modules they need."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIBS = ROOT / "mibs"


def base_mibs() -> Path:
    """The standard SMIv2 base modules: $PROVSYNC_BASE_MIBS or ../shared/mibs/ietf."""
    configured = os.environ.get("PROVSYNC_BASE_MIBS")
    candidate = Path(configured) if configured else ROOT.parent / "shared" / "mibs" / "ietf"
    if not (candidate / "SNMPv2-SMI.txt").is_file():
        pytest.skip(
            f"base MIB modules not found at {candidate}; set PROVSYNC_BASE_MIBS to a directory "
            "holding SNMPv2-SMI and the other standard modules"
        )
    return candidate


def tool(name: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        pytest.fail(
            f"{name} is not installed; `make test` installs it (Debian snmp/snmptrapd/smitools)"
        )
    return path


def env(mib_dir: Path = MIBS) -> dict[str, str]:
    variables = dict(os.environ)
    variables["MIBDIRS"] = f"{base_mibs()}:{mib_dir}"
    variables["MIBS"] = "+PROVSYNC-MIB"
    variables["SMIPATH"] = f"{base_mibs()}:{mib_dir}"
    return variables


def run(*args: str, mib_dir: Path = MIBS, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(mib_dir),
    )
