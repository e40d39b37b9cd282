"""``provsync events``: see events."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli import output
from agent.cli.common import JsonOpt, connect

events_app = typer.Typer(help="See events.", no_args_is_help=True)


@events_app.command("list")
def events_list(
    ctx: typer.Context,
    type_id: Annotated[str | None, typer.Option("--type", "-t")] = None,
    resource: Annotated[str | None, typer.Option("--resource", "-r")] = None,
    severity: Annotated[list[str] | None, typer.Option("--severity", "-s")] = None,
    after: Annotated[int, typer.Option(min=0, help="Only events after this sequence.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Newest N.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List the newest events, oldest first."""
    with connect(ctx) as api:
        data = api.events(type_id, resource, severity, after, limit)
    if as_json:
        output.print_json(data)
        return
    output.table(
        f"Events: {len(data)}",
        ["seq", "time", "severity", "type", "resource", "text"],
        [
            [
                e["seq"],
                output.when(e["time"]),
                output.severity(e["severity"]),
                e["type"],
                e["resource"],
                e["text"],
            ]
            for e in data
        ],
    )
