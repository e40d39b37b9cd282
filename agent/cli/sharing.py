"""``provsync sharing|objects``: flow-through provisioning from the CLI (the
distributions it queues: agent/cli/distribution.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agent.cli import output
from agent.cli.api_types import HubChanges, JsonObject, JsonValue, Plan
from agent.cli.common import ElementOpt, JsonOpt, UserOpt, connect, fail, say, who
from agent.sharing.wording import counted

sharing_app = typer.Typer(
    help="Sharing with the elements: state, sync, reconcile.", no_args_is_help=True
)
objects_app = typer.Typer(
    help="The hub's shared data; changes flow through to the elements.", no_args_is_help=True
)


# --------------------------------------------------------------------------- sharing
@sharing_app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Sharing state of the hub and each element; why hub changes are blocked, if they are."""
    with connect(ctx) as api:
        data = api.sharing_status()
    if as_json:
        output.print_json(data)
        return
    say(
        f"sharing: {data['state']}"
        + (" (Flow Through Provisioning Inactive)" if data["ftp_inactive"] else "")
    )
    if data["blocked"]:
        say(f"blocked: {data['blocked']}")
    conflicts = data["conflicts"]
    say(f"conflicts: {conflicts['unresolved']} unresolved, {conflicts['review']} for review")
    output.table(
        "Elements",
        ["name", "type", "sharing", "device data", "pending", "errors"],
        [
            [
                e["name"],
                e["type"],
                e["sharing"],
                "yes" if e["device_data"] else "no",
                e["pending"],
                e["errors"],
            ]
            for e in data["elements"]
        ],
    )


@sharing_app.command("start")
def start(ctx: typer.Context, element: str) -> None:
    """Start sharing with an element from the hub (its version is checked as when it asks)."""
    with connect(ctx) as api:
        data = api.start_sharing(element)
    say(
        f"{data['element']} shares with the hub; sharing: {data['state']} "
        f"(provsync sharing sync {data['element']})"
    )


@sharing_app.command("sync")
def sync(ctx: typer.Context, element: str) -> None:
    """Sync an element's data to the hub (what the element's own Sync does)."""
    with connect(ctx) as api:
        data = api.sync_to_hub(element)
    say(f"sync from {element} started as job {data['job']} (provsync jobs show {data['job']})")


def _value(value: JsonValue) -> str:
    return "-" if value is None else json.dumps(value, sort_keys=True)


@sharing_app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Conflicts found by syncs: automatic, for review, unresolved."""
    with connect(ctx) as api:
        data = api.conflicts(show_all)
    if as_json:
        output.print_json(data)
        return
    summary = data["summary"]
    say(
        f"automatic: {summary['automatic']}  for review: {summary['review']}  "
        f"unresolved: {summary['unresolved']}  resolved: {summary['resolved']}"
    )
    output.table(
        f"Conflicts: {len(data['conflicts'])}",
        ["id", "category", "element", "object", "hub", "element value", "base", "state"],
        [
            [
                c["id"],
                c["category"],
                c["element"],
                f"{c['class']} {c['key']}"
                + (f" ~ {c['hub_key']}" if c["hub_key"] != c["key"] else ""),
                _value(c["hub"]),
                _value(c["element_value"]),
                _value(c["base"]),
                c["resolution"] or c["state"],
            ]
            for c in data["conflicts"]
        ],
    )
    if summary["unresolved"] or summary["review"]:
        say(
            "resolve with: provsync sharing resolve ID --take hub|element|skip "
            "(or --all --take hub)"
        )


@sharing_app.command("resolve")
def resolve(
    ctx: typer.Context,
    conflict_id: Annotated[int | None, typer.Argument(help="Conflict id (see reconcile).")] = None,
    take: Annotated[str, typer.Option("--take", help="hub, element or skip.")] = "",
    resolve_all: Annotated[bool, typer.Option("--all", help="Every open conflict.")] = False,
    element: ElementOpt = None,
    user: UserOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what it would do; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Resolve a conflict (or all): take the hub's value, the element's, or skip it."""
    if take not in ("hub", "element", "skip"):
        fail("--take must be hub, element or skip", 2)
    if (conflict_id is None) == (not resolve_all):
        fail("give a conflict id or --all", 2)
    if dry_run:
        with connect(ctx) as api:
            plan = api.plan_resolve(conflict_id, take, element)
        if as_json:
            output.print_json(plan)
        else:
            _say_plan(plan)
        return
    with connect(ctx) as api:
        if conflict_id is not None:
            data = api.resolve_conflict(conflict_id, take, who(user))
        else:
            data = api.resolve_conflicts(take, who(user), element)
    if as_json:
        output.print_json(data)
        return
    say(f"resolved {counted(len(data['resolved']), 'conflict')}: took {take}")


def _say_plan(plan: Plan) -> None:
    """One line per decision: what is written where, who receives it, what it drops."""
    if not plan["plan"]:
        say("nothing to resolve")
    for item in plan["plan"]:
        conflict = item["conflict"]
        what = f"{conflict['class']} {conflict['key']} on {conflict['element']}"
        head = f"conflict {conflict['id']} ({what})"
        if item["refused"]:
            say(f"{head}: refused, the resolve stops here: {item['refused']}")
            break
        writes = ", ".join(f"{c['op']} {c['key']}" for c in item["changes"]) or "nothing"
        where = {"hub": "the hub", "element": str(conflict["element"])}.get(
            item["written_to"] or "", "nowhere (skipped)"
        )
        sent = ", ".join(item["sent_to"]) or "no element"
        dropped = len(item["cancelled"])
        say(
            f"{head}: writes {writes} to {where}; sent to {sent}"
            + (f"; drops {counted(dropped, 'unsent or failed update')}" if dropped else "")
        )
    say("nothing was changed (--dry-run)")


@sharing_app.command("devices")
def devices(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Phone services: full details where the hub has device data, else the number only."""
    with connect(ctx) as api:
        data = api.devices()
    if as_json:
        output.print_json(data)
        return
    output.table(
        f"Phone services: {len(data)}",
        ["number", "element", "details"],
        [[d["number"], d.get("element", ""), _value(d.get("details"))] for d in data],
    )


@sharing_app.command("device-sync")
def device_sync(ctx: typer.Context) -> None:
    """Run a device-data sync with all elements (events say when it completes)."""
    with connect(ctx) as api:
        api.device_data_sync()
    say("device-data sync started (provsync events list --type device-data-sync-completed)")


# --------------------------------------------------------------------------- objects
def parse_fields(pairs: list[str]) -> JsonObject:
    """FIELD=VALUE (a string) or FIELD:=JSON (a number, true, a list...), as httpie does."""
    fields: JsonObject = {}
    for pair in pairs:
        name, typed, value = pair.partition(":=")
        if not typed or "=" in name:  # the first separator decides: note=a:=b is a string
            name, equals, value = pair.partition("=")
            if not equals or not name:
                raise ValueError(f"{pair!r} is not FIELD=VALUE or FIELD:=JSON")
            fields[name] = value
            continue
        try:
            fields[name] = json.loads(value)
        except ValueError:
            raise ValueError(f"{pair!r}: {value!r} is not JSON") from None
    return fields


def _fields(pairs: list[str] | None) -> JsonObject:
    try:
        return parse_fields(pairs or [])
    except ValueError as exc:
        fail(str(exc), 2)


FieldsArg = Annotated[list[str] | None, typer.Argument(help="FIELD=VALUE or FIELD:=JSON ...")]


def _changed(data: HubChanges, as_json: bool) -> None:
    if as_json:
        output.print_json(data)
        return
    for change in data["changes"]:
        say(
            f"{change['op']} {change['class']} {change['key']}: "
            f"{counted(data['distributions'], 'distribution')} queued"
        )


@objects_app.command("add")
def objects_add(
    ctx: typer.Context, cls: str, key: str, fields: FieldsArg = None, as_json: JsonOpt = False
) -> None:
    """Add a shared object on the hub; it flows to every sharing element."""
    data = _fields(fields)
    with connect(ctx) as api:
        changed = api.add_object(cls, key, data)
    _changed(changed, as_json)


@objects_app.command("set")
def objects_set(
    ctx: typer.Context, cls: str, key: str, fields: FieldsArg = None, as_json: JsonOpt = False
) -> None:
    """Change fields of a shared object (others are kept)."""
    data = _fields(fields)
    if not data:
        fail("give at least one FIELD=VALUE", 2)
    with connect(ctx) as api:
        changed = api.set_object(cls, key, data)
    _changed(changed, as_json)


@objects_app.command("delete")
def objects_delete(ctx: typer.Context, cls: str, key: str, as_json: JsonOpt = False) -> None:
    """Delete a shared object on the hub and on every sharing element."""
    with connect(ctx) as api:
        changed = api.delete_object(cls, key)
    _changed(changed, as_json)


@objects_app.command("list")
def objects_list(
    ctx: typer.Context,
    cls: str,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many (default: all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The hub's shared objects of a class, in key order."""
    with connect(ctx) as api:
        data = api.shared_objects(cls, limit)
    if as_json:
        output.print_json(data)
        return
    output.table(
        f"{cls}: {len(data)}",
        ["key", "data", "origin", "changed"],
        [[o["key"], _value(o["data"]), o["origin"], output.when(o["changed"])] for o in data],
    )


@objects_app.command("show")
def objects_show(ctx: typer.Context, cls: str, key: str) -> None:
    """One shared object as JSON."""
    with connect(ctx) as api:
        data = api.shared_object(cls, key)
    output.print_json(data)
