"""``provsync config``: write and check configuration files (no agent needed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.cli import failures
from agent.cli.common import fail, say
from agent.config import default_document, load_settings
from agent.errors import ConfigError

config_app = typer.Typer(help="Write and check configuration files.", no_args_is_help=True)


@config_app.command("init")
def config_init(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: standard output).")
    ] = None,
    data_dir: Annotated[str, typer.Option(help="[agent] data_dir to write.")] = "var",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a complete default configuration with a freshly generated API token."""
    import tomli_w

    text = (
        "# provsync configuration written by `provsync config init`.\n"
        "# Every key is shown with its default; etc/provsync.toml in the source explains each.\n"
        + tomli_w.dumps(default_document(data_dir=data_dir))
    )
    if out is None or str(out) == "-":
        sys.stdout.write(text)
        return
    if out.exists() and not force:
        fail(f"{out} exists; use --force to overwrite it", 1)
    if (blocker := failures.blocking_file(out.parent)) is not None:
        fail(f"cannot write {out}: {blocker} is not a directory", 2)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # The file holds the API token: readable by its owner only.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", failures.exit_code(exc))
    say(f"wrote {out}")


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="Configuration file.")]) -> None:
    """Validate a configuration file (exit 2 with the file and key path when it is wrong)."""
    try:
        load_settings(path)
    except ConfigError as exc:
        fail(str(exc), 2)
    say(f"{path}: OK")
