"""``provsync alarms``: see, raise, clear and acknowledge alarms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from agent.cli import output
from agent.cli.api_types import AlarmChange
from agent.cli.client import Client
from agent.cli.common import JsonOpt, NoteOpt, UserOpt, connect, fail, print_record, say, who

alarms_app = typer.Typer(help="See, raise, clear and acknowledge alarms.", no_args_is_help=True)


def _print_change(data: AlarmChange, as_json: bool) -> None:
    if as_json:
        output.print_json(data)
        return
    alarm = data["alarm"]
    seq = f" (seq {data['seq']})" if data["seq"] else " (no change notified)"
    say(
        f"alarm {alarm['id']} {alarm['type']} {alarm['resource']}: {data['change']}{seq}; "
        f"severity {alarm['severity']}, {alarm['state']}, count {alarm['count']}"
    )


@alarms_app.command("list")
def alarms_list(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Active and cleared alarms.")] = False,
    cleared: Annotated[bool, typer.Option("--cleared", help="Cleared alarms only.")] = False,
    severity: Annotated[
        list[str] | None, typer.Option("--severity", "-s", help="Only this severity (repeat).")
    ] = None,
    type_id: Annotated[str | None, typer.Option("--type", "-t", help="Only this type.")] = None,
    resource: Annotated[str | None, typer.Option("--resource", "-r")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many (default: every one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List active alarms (--all adds cleared ones), oldest first, every one unless --limit."""
    state = "all" if show_all else "cleared" if cleared else "active"
    with connect(ctx) as api:
        # One more than asked for tells whether --limit left some out.
        data = api.alarms(state, severity, type_id, resource, None if limit is None else limit + 1)
    more = limit is not None and len(data) > limit
    data = data[:limit]
    if as_json:
        output.print_json(data)
        return
    output.table(
        f"Alarms ({state}): {len(data)}",
        ["id", "severity", "state", "type", "resource", "count", "ack", "changed", "text"],
        [
            [
                a["id"],
                output.severity(a["severity"]),
                a["state"],
                a["type"],
                a["resource"] + (f" / {a['qualifier']}" if a["qualifier"] else ""),
                a["count"],
                a["ack_by"] or "",
                output.when(a["changed_at"]),
                a["text"],
            ]
            for a in data
        ],
    )
    if more:
        output.errors.print(
            f"the first {limit} shown; more alarms match (without --limit: all of them)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@alarms_app.command("show")
def alarms_show(ctx: typer.Context, alarm_id: int, as_json: JsonOpt = False) -> None:
    """Show one alarm with its history."""
    with connect(ctx) as api:
        data = api.alarm(alarm_id)
    if as_json:
        output.print_json(data)
        return
    print_record(f"Alarm {alarm_id}", data, "history")
    output.table(
        "History",
        ["time", "seq", "change", "severity", "by", "note"],
        [
            [
                output.when(h["at"]),
                h["seq"],
                h["change"],
                output.severity(h["severity"]),
                h["by"],
                h["note"],
            ]
            for h in data["history"]
        ],
    )


@alarms_app.command("raise")
def alarms_raise(
    ctx: typer.Context,
    type_id: Annotated[str, typer.Argument(metavar="TYPE", help="Alarm type id.")],
    resource: Annotated[str, typer.Option("--resource", "-r", help="Affected resource.")],
    qualifier: Annotated[str, typer.Option("--qualifier", "-q")] = "",
    severity: Annotated[
        str | None, typer.Option("--severity", "-s", help="Default: the type's severity.")
    ] = None,
    text: Annotated[str, typer.Option("--text", help="What happened.")] = "",
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Raise an alarm; raising an active one again counts it and updates it in place."""
    with connect(ctx) as api:
        data = api.raise_alarm(type_id, resource, qualifier, severity, text, who(user))
    _print_change(data, as_json)


@alarms_app.command("clear")
def alarms_clear(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="ID|TYPE", help="Alarm id, or a type id.")],
    resource: Annotated[
        str | None, typer.Option("--resource", "-r", help="With TYPE: the resource.")
    ] = None,
    qualifier: Annotated[str, typer.Option("--qualifier", "-q")] = "",
    note: NoteOpt = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Clear an alarm by id, or by TYPE --resource R [--qualifier Q]."""
    # isdecimal, not isdigit: "²" is a digit that int() does not read.
    if target.isdecimal():
        if resource is not None:
            fail("give either an alarm id or TYPE --resource R, not both", 2)
        with connect(ctx) as api:
            data = api.clear(int(target), note, who(user))
    else:
        if resource is None:
            fail(f"clearing by type needs --resource (provsync alarms clear {target} -r R)", 2)
        with connect(ctx) as api:
            data = api.clear_by_key(target, resource, qualifier, note, who(user))
    _print_change(data, as_json)


OperatorAction = Callable[[Client, int, str | None, str], AlarmChange]


def _operator_command(action: str, call: OperatorAction, summary: str) -> None:
    def command(
        ctx: typer.Context,
        alarm_id: int,
        note: NoteOpt = None,
        user: UserOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        with connect(ctx) as api:
            data = call(api, alarm_id, note, who(user))
        _print_change(data, as_json)

    command.__doc__ = summary
    alarms_app.command(action)(command)


_operator_command("ack", Client.ack, "Acknowledge an alarm.")
_operator_command("unack", Client.unack, "Withdraw the acknowledgement of an alarm.")


@alarms_app.command("test")
def alarms_test(
    ctx: typer.Context,
    text: Annotated[str, typer.Option("--text")] = "",
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a test notification to every export target."""
    with connect(ctx) as api:
        data = api.test_notification(text, who(user))
    if as_json:
        output.print_json(data)
        return
    targets = ", ".join(data["targets"]) or "no export target configured"
    say(f"test notification seq {data['seq']} queued for: {targets}")
