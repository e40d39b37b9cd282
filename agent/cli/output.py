"""How the CLI shows things: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Piped output keeps whole rows (for grep) instead of folding at 80 columns.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_WIDTH)
errors = Console(stderr=True, width=_WIDTH)

SEVERITY_STYLE = {
    "critical": "bold red",
    "major": "red",
    "minor": "yellow",
    "warning": "cyan",
    "indeterminate": "white",
    "cleared": "green",
}


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def json_line(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def severity(value: str) -> Text:
    return Text(value, style=SEVERITY_STYLE.get(value, "white"))


def when(value: str | None) -> str:
    """``2026-11-21T21:14:50.670138Z`` -> ``2026-11-21 21:14:50`` for tables."""
    if not value:
        return ""
    return value.replace("T", " ")[:19]


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """The last column folds; the others keep their values whole."""
    grid = Table(title=title, title_justify="left", header_style="bold")
    for index, column in enumerate(columns):
        last = index == len(columns) - 1
        grid.add_column(column, overflow="fold", no_wrap=not last)
    for row in rows:
        # Text cells: values are data, never rich markup ("[alarm ...]" must show as is).
        grid.add_row(
            *(v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in row)
        )
    console.print(grid)


def error(message: str) -> None:
    errors.print(Text("error: ", style="red") + Text(message), highlight=False, soft_wrap=True)
