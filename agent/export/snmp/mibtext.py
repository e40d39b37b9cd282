"""The text of PROVSYNC-MIB, re-rooted and renamed for ``provsync mib export``.

The packaged module places its MODULE-IDENTITY at ``{ provsyncEnterprise 1 }`` and
defines ``provsyncEnterprise`` (``{ enterprises 32473 }``) right after it: SMIv2 wants the
MODULE-IDENTITY first, and a node written as ``{ enterprises 32473 1 }`` would be an
implicit one (smilint warns). Another root gets the same shape: one named node per arc
between ``enterprises`` and the module's own arc.

A module name is unique in a manager, so an export under another root gets another
name (by default derived from the root, ``PROVSYNC-<arcs>-MIB``): two sites' modules then
load side by side.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from agent.export.snmp.oids import DEFAULT_ROOT
from agent.oids import ENTERPRISES, check_enterprise_root

MODULE = "PROVSYNC-MIB"
_HEADER = f"{MODULE} DEFINITIONS ::= BEGIN\n"
_PLACEMENT = "    ::= { provsyncEnterprise 1 }\n"
_ENTERPRISE_NODE = "\nprovsyncEnterprise OBJECT IDENTIFIER ::= { enterprises 32473 }\n"
MAX_MODULE_NAME = 64
"""RFC 2578 section 3.1 bounds descriptors at 64 characters; the same for module names."""
_MODULE_NAME = re.compile(r"[A-Z][A-Za-z0-9]*(-[A-Za-z0-9]+)*")
"""An ASN.1 module reference (X.680 11.2 / RFC 2578 section 3): a capital first, letters,
digits and single hyphens, no hyphen at the end."""


def check_module_name(name: str) -> str:
    """``name`` if it can name an SMIv2 module.

    Raises:
        ValueError: it cannot (the message says why, in one line).
    """
    if not _MODULE_NAME.fullmatch(name):
        raise ValueError(
            f"module name {name!r} is not a valid SMI module name: an uppercase letter "
            "first, then letters, digits and single hyphens, not ending with a hyphen"
        )
    if len(name) > MAX_MODULE_NAME:
        raise ValueError(f"module name {name!r} is longer than {MAX_MODULE_NAME} characters")
    return name


def _check_root(root: tuple[int, ...]) -> tuple[int, ...]:
    return check_enterprise_root(root)[len(ENTERPRISES) :]


def default_module_name(root: tuple[int, ...] = DEFAULT_ROOT) -> str:
    """PROVSYNC-MIB at the default root; ``PROVSYNC-<arcs below enterprises>-MIB``
    elsewhere, so that exports for different roots never share a name."""
    arcs = _check_root(root)
    if root == DEFAULT_ROOT:
        return MODULE
    return f"PROVSYNC-{'-'.join(map(str, arcs))}-MIB"


def _placement(arcs: tuple[int, ...]) -> tuple[str, str]:
    """(the MODULE-IDENTITY's ``::=`` line, the node definitions that follow it)."""
    if len(arcs) == 1:
        return f"    ::= {{ enterprises {arcs[0]} }}\n", ""
    names = ["provsyncEnterprise"] + [f"provsyncBranch{i}" for i in range(1, len(arcs) - 1)]
    parents = ["enterprises", *names[:-1]]
    nodes = "".join(
        f"\n{name} OBJECT IDENTIFIER ::= {{ {parent} {arc} }}\n"
        for name, parent, arc in zip(names, parents, arcs[:-1], strict=True)
    )
    return f"    ::= {{ {names[-1]} {arcs[-1]} }}\n", nodes


def mib_text(root: tuple[int, ...] = DEFAULT_ROOT, module: str | None = None) -> str:
    """The module with its MODULE-IDENTITY at ``root`` (below enterprises), named
    ``module`` (default: :func:`default_module_name`).

    Raises:
        ValueError: the root is not below enterprises, or the name is not a module name.
    """
    text = resources.files("agent.export.snmp").joinpath(f"{MODULE}.txt").read_text("utf-8")
    if not text.startswith(_HEADER) or _PLACEMENT + _ENTERPRISE_NODE not in text:
        raise RuntimeError("PROVSYNC-MIB.txt lost its header or MODULE-IDENTITY placement")
    arcs = _check_root(root)
    name = check_module_name(module if module is not None else default_module_name(root))
    if root == DEFAULT_ROOT and name == MODULE:
        return text
    placement, nodes = _placement(arcs)
    text = text.replace(_PLACEMENT + _ENTERPRISE_NODE, placement + nodes, 1)
    dotted = ".".join(map(str, root))
    header = f"{name} DEFINITIONS ::= BEGIN\n\n-- {MODULE} as exported for the root {dotted}.\n"
    return header + text[len(_HEADER) :]


def export(
    directory: Path, root: tuple[int, ...] = DEFAULT_ROOT, module: str | None = None
) -> Path:
    """Write ``<module>.txt`` into ``directory``; its path.

    Raises:
        ValueError: as :func:`mib_text`.
        OSError: the file cannot be written.
    """
    name = module if module is not None else default_module_name(root)
    text = mib_text(root, name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.txt"
    path.write_text(text, encoding="utf-8")
    return path
