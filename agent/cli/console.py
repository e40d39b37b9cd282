"""``provsync console``: a one-time link that logs a browser in to the web console."""

from __future__ import annotations

import webbrowser
from typing import Annotated

import typer

from agent.cli.common import connect, say


def console(
    ctx: typer.Context,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the link in this host's browser too.")
    ] = False,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="A viewer's link (a NOC screen): it changes nothing."),
    ] = False,
) -> None:
    """Print a link to the web console that logs a browser in (good once, for 5 minutes)."""
    with connect(ctx) as api:
        link = api.console_link(read_only)
    say(link["url"])
    if open_browser:
        webbrowser.open(link["url"])
