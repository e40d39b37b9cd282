"""The text of PROVSYNC-MIB, re-rooted for ``provsync mib export``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from agent.export.snmp.oids import DEFAULT_ROOT, ENTERPRISES

MODULE = "PROVSYNC-MIB"
_DEFAULT_PLACEMENT = "::= { enterprises 32473 1 }"


def mib_text(root: tuple[int, ...] = DEFAULT_ROOT) -> str:
    """The module with its MODULE-IDENTITY placed at ``root`` (below enterprises)."""
    text = resources.files("agent.export.snmp").joinpath(f"{MODULE}.txt").read_text("utf-8")
    if _DEFAULT_PLACEMENT not in text:
        raise RuntimeError("PROVSYNC-MIB.txt lost its MODULE-IDENTITY placement line")
    if root[: len(ENTERPRISES)] != ENTERPRISES or len(root) <= len(ENTERPRISES):
        raise ValueError("the MIB root must be below enterprises (1.3.6.1.4.1.N...)")
    arcs = " ".join(str(arc) for arc in root[len(ENTERPRISES) :])
    return text.replace(_DEFAULT_PLACEMENT, f"::= {{ enterprises {arcs} }}", 1)


def export(directory: Path, root: tuple[int, ...] = DEFAULT_ROOT) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{MODULE}.txt"
    path.write_text(mib_text(root), encoding="utf-8")
    return path
