"""How the CLI shows things: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
errors = Console(stderr=True)

SEVERITY_STYLE = {
    "critical": "bold red",
    "major": "red",
    "minor": "yellow",
    "warning": "cyan",
    "indeterminate": "white",
    "cleared": "green",
}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def severity(value: str) -> Text:
    return Text(value, style=SEVERITY_STYLE.get(value, "white"))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        # Text cells: values are data, never rich markup ("[alarm ...]" must show as is).
        grid.add_row(
            *(v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in row)
        )
    console.print(grid)


def error(message: str) -> None:
    errors.print(Text("error: ", style="red") + Text(message), highlight=False, soft_wrap=True)
