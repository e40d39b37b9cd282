"""``provsync elements``: the network elements the agent syncs with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import output
from agent.cli.api_types import Element
from agent.cli.common import JsonOpt, connect, fail, print_record, say
from agent.cli.element_kinds import DEFAULT_TYPE, TYPE_HELP, ElementType
from agent.durations import format_duration

elements_app = typer.Typer(help="Network elements the agent syncs with.", no_args_is_help=True)


def _read_password(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)


def _seconds(interval: str) -> int:
    """``--interval`` in seconds; a duration that does not parse is bad usage."""
    from agent.durations import parse_duration

    try:
        return int(parse_duration(interval))
    except ValueError as exc:
        fail(str(exc), 2)


@elements_app.command("add")
def elements_add(
    ctx: typer.Context,
    name: str,
    url: Annotated[str, typer.Option("--url", help="Element API v1 base URL.")],
    element_type: Annotated[
        ElementType, typer.Option("--type", metavar="TYPE", help=TYPE_HELP)
    ] = DEFAULT_TYPE,
    connector: Annotated[str, typer.Option(help="Connector driver.")] = "http",
    username: Annotated[str | None, typer.Option()] = None,
    password_file: Annotated[Path | None, typer.Option(help="File holding the password.")] = None,
    interval: Annotated[
        str | None, typer.Option(help="Incremental sync schedule, e.g. 24h; 0s: no schedule.")
    ] = None,
    cron: Annotated[str, typer.Option(help="Crontab schedule (UTC) instead of --interval.")] = "",
    uses: Annotated[
        str, typer.Option(help="Messaging elements: the network elements they use (a,b).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Add an element; an initialization sync is queued at once."""
    seconds = None if interval is None else _seconds(interval)
    password = _read_password(password_file)
    with connect(ctx) as api:
        data = api.add_element(
            {
                "name": name,
                "type": element_type.value,
                "url": url,
                "connector": connector,
                "username": username,
                "password": password,
                "interval": seconds,
                "cron": cron,
                "uses": [n.strip() for n in uses.split(",") if n.strip()],
            }
        )
    if as_json:
        output.print_json(data)
        return
    say(f"added {name}; initialization sync queued as job {data['job']}")


@elements_app.command("list")
def elements_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List elements with their sync state."""
    with connect(ctx) as api:
        data = api.elements()
    if as_json:
        output.print_json(data)
        return
    output.table(
        f"Elements: {len(data)}",
        ["name", "type", "state", "version", "cursor", "last sync", "next sync", "address"],
        [
            [
                e["name"],
                e["type"],
                e["sync_state"],
                e["software_version"],
                e["cursor"],
                output.when(e["last_sync_at"]),
                _next_sync(e),
                e["address"],
            ]
            for e in data
        ],
    )


def schedule_text(interval: int, cron: str) -> str:
    """An element's schedule as people read it (a crontab wins over an interval)."""
    if cron:
        return f"incremental sync cron {cron} (UTC)"
    if interval > 0:
        return f"incremental sync every {format_duration(interval)}"
    return "no schedule"


def _next_sync(element: Element) -> str:
    return output.when(element.get("next_sync_at")) or "no schedule"


@elements_app.command("show")
def elements_show(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """One element: sync state, cursor, epoch, version, objects per class."""
    with connect(ctx) as api:
        data = api.element(name)
    if as_json:
        output.print_json(data)
        return
    print_record(f"Element {name}", {**data, "next_sync_at": _next_sync(data)}, "objects")
    output.table("Objects", ["class", "count"], sorted(data.get("objects", {}).items()))


@elements_app.command("set-schedule")
def elements_set_schedule(
    ctx: typer.Context,
    name: str,
    interval: Annotated[
        str | None, typer.Option(help="e.g. 12h; 0s: no schedule (unless --cron).")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help='Crontab (UTC), e.g. "0 2 * * *"; "" clears it.')
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change when the element's recurring incremental sync runs."""
    seconds = None if interval is None else _seconds(interval)
    if seconds is None and cron is None:
        fail("give --interval and/or --cron", 2)
    with connect(ctx) as api:
        data = api.set_schedule(name, seconds, cron)
    if as_json:
        output.print_json(data)
        return
    schedule = schedule_text(data["interval"], data["cron"])
    due = data.get("next_sync_at")
    say(f"{name}: {schedule}" + (f", next at {output.when(due)} UTC" if due else ""))


@elements_app.command("remove")
def elements_remove(ctx: typer.Context, name: str) -> None:
    """Remove an element and the hub's copy of its data."""
    with connect(ctx) as api:
        api.remove_element(name)
    say(f"removed {name}")


@elements_app.command("activate")
def elements_activate(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Activate a messaging element: it takes the current programming of the elements it uses."""
    with connect(ctx) as api:
        data = api.activate(name)
    if as_json:
        output.print_json(data)
        return
    used = ", ".join(e["name"] for e in data["elements"]) or "no element"
    say(f"activated {name} ({used})")


@elements_app.command("set-address")
def elements_set_address(ctx: typer.Context, name: str, url: str) -> None:
    """Move an element to another address (messaging elements using it need activation)."""
    with connect(ctx) as api:
        api.set_address(name, url)
    say(f"{name} is at {url}")


@elements_app.command("set-credentials")
def elements_set_credentials(
    ctx: typer.Context,
    name: str,
    username: Annotated[str, typer.Option()],
    password_file: Annotated[Path, typer.Option(help="File holding the password.")],
) -> None:
    """Set the username and password the agent logs in to the element with, and test
    them with a login at once (the authentication alarms follow the test)."""
    password = _read_password(password_file) or ""
    with connect(ctx) as api:
        answer = api.set_credentials(name, username, password)
    tested = answer.get("tested", "")
    say(f"credentials of {name} set" + (f"; {tested}" if tested else ""))


@elements_app.command("test")
def elements_test(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Test the element's login with the credentials it has (the authentication and
    reachability alarms follow the test, as after set-credentials)."""
    with connect(ctx) as api:
        answer = api.test_login(name)
    if as_json:
        output.print_json(answer)
        return
    say(f"login test of {name}: {answer['tested'] or 'nothing tests it'}")
