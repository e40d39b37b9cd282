"""The layer contract of pyproject.toml ([tool.importlinter]) holds, and it would catch a break.

The broken cases run ``lint-imports`` on a copy of the package in a temporary directory
(lint-imports puts its working directory first on sys.path, so the copy is what it reads),
with one import added where the contract forbids it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def copy_with_import(tmp_path: Path, module: str, statement: str) -> Path:
    """The project's package and contract in ``tmp_path``, ``statement`` added to ``module``."""
    shutil.copytree(
        ROOT / "agent", tmp_path / "agent", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / Path(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{statement}\n", encoding="utf-8")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_module_in_no_layer_breaks_the_contract(tmp_path: Path) -> None:
    # Exhaustive: a new module directly in agent/ must be given its place in the layers.
    copy = copy_with_import(tmp_path, "agent.clock", "")
    (copy / "agent" / "unplaced.py").write_text('"""Not in any layer."""\n', encoding="utf-8")
    result = lint_imports(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not listed as layers" in result.stdout
    assert "- agent.unplaced" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract", "named"),
    [
        # A lower layer importing an upper one, at module level...
        (
            "agent.store.outage",
            "from agent.api import app as _app",
            "agent/ layers",
            "agent.store.outage -> agent.api.app",
        ),
        # ...or lazily inside a function (what config's validators used to do).
        (
            "agent.config.snmp",
            "def _oids() -> object:\n    from agent.export.snmp import oids\n\n    return oids",
            "agent/ layers",
            "agent.config.snmp -> agent.export.snmp.oids",
        ),
        # One exporter importing another (what the syslog exporter used to do).
        (
            "agent.export.syslog.exporter",
            "from agent.export.snmp import notify as _notify",
            "exporters do not import one another",
            "agent.export.syslog.exporter -> agent.export.snmp.notify",
        ),
        # The agent using the element simulator.
        (
            "agent.sync.engine",
            "from agent.simulator import app as _simulator",
            "only the CLI starts the element simulator",
            "agent.sync.engine -> agent.simulator.app",
        ),
    ],
)
def test_a_wrong_way_import_breaks_the_contract_and_is_named(
    tmp_path: Path, module: str, statement: str, contract: str, named: str
) -> None:
    result = lint_imports(copy_with_import(tmp_path, module, statement))
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
    assert named in broken, result.stdout
