"""``provsync sharing|distribution|objects``: flow-through provisioning from the CLI."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer

from agent.cli import output
from agent.cli.common import JsonOpt, UserOpt, _call, _fail, _who

sharing_app = typer.Typer(
    help="Sharing with the elements: state, sync, reconcile.", no_args_is_help=True
)
distribution_app = typer.Typer(
    help="Hub updates on their way to the elements.", no_args_is_help=True
)
objects_app = typer.Typer(
    help="The hub's shared data; changes flow through to the elements.", no_args_is_help=True
)

ElementOpt = Annotated[str | None, typer.Option("--element", "-e", help="Only this element.")]


def _say(text: str) -> None:
    output.console.print(text, highlight=False, markup=False)


# --------------------------------------------------------------------------- sharing
@sharing_app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Sharing state of the hub and each element; why hub changes are blocked, if they are."""
    data = _call(ctx, "GET", "/sharing")
    if as_json:
        output.print_json(data)
        return
    _say(
        f"sharing: {data['state']}"
        + (" (Flow Through Provisioning Inactive)" if data["ftp_inactive"] else "")
    )
    if data["blocked"]:
        _say(f"blocked: {data['blocked']}")
    conflicts = data["conflicts"]
    _say(f"conflicts: {conflicts['unresolved']} unresolved, {conflicts['review']} for review")
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
    data = _call(ctx, "POST", "/sharing/start", {"element": element})
    _say(
        f"{data['element']} shares with the hub; sharing: {data['state']} "
        f"(provsync sharing sync {data['element']})"
    )


@sharing_app.command("sync")
def sync(ctx: typer.Context, element: str) -> None:
    """Sync an element's data to the hub (what the element's own Sync does)."""
    data = _call(ctx, "POST", "/sharing/sync", {"element": element})
    _say(f"sync from {element} started as job {data['job']} (provsync jobs show {data['job']})")


def _value(value: Any) -> str:
    return "-" if value is None else json.dumps(value, sort_keys=True)


@sharing_app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Conflicts found by syncs: automatic, for review, unresolved."""
    data = _call(ctx, "GET", "/sharing/conflicts", all=str(show_all).lower())
    if as_json:
        output.print_json(data)
        return
    summary = data["summary"]
    _say(
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
        _say(
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
    as_json: JsonOpt = False,
) -> None:
    """Resolve a conflict (or all): take the hub's value, the element's, or skip it."""
    if take not in ("hub", "element", "skip"):
        _fail("--take must be hub, element or skip", 2)
    if (conflict_id is None) == (not resolve_all):
        _fail("give a conflict id or --all", 2)
    body = {"take": take, "by": _who(user)}
    if conflict_id is not None:
        data = _call(ctx, "POST", f"/sharing/conflicts/{conflict_id}/resolve", body)
    else:
        data = _call(ctx, "POST", "/sharing/conflicts/resolve", {**body, "element": element})
    if as_json:
        output.print_json(data)
        return
    _say(f"resolved {len(data['resolved'])} conflicts: took {take}")


@sharing_app.command("devices")
def devices(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Phone services: full details where the hub has device data, else the number only."""
    data = _call(ctx, "GET", "/sharing/devices")
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
    _call(ctx, "POST", "/sharing/device-data/sync", {})
    _say("device-data sync started (provsync events list --type device-data-sync-completed)")


# --------------------------------------------------------------------------- distribution
@distribution_app.command("list")
def distribution_list(
    ctx: typer.Context,
    element: ElementOpt = None,
    state: Annotated[
        list[str] | None, typer.Option(help="pending, inflight, done, error (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Distributions not yet applied (pending, in flight, failed), oldest first."""
    params: dict[str, Any] = {"limit": limit}
    if element:
        params["element"] = element
    if state:
        params["state"] = state
    data = _call(ctx, "GET", "/distributions", **params)
    if as_json:
        output.print_json(data)
        return
    output.table(
        f"Distributions: {len(data)}",
        ["id", "element", "state", "op", "object", "attempts", "error", "updated"],
        [
            [
                d["id"],
                d["element"],
                d["state"],
                d["op"],
                f"{d['class']} {d['key']}",
                d["attempts"],
                d["error"] or "",
                output.when(d["updated"]),
            ]
            for d in data
        ],
    )


def _operate(
    ctx: typer.Context,
    verb: str,
    ident: int | None,
    every: bool,
    element: str | None,
    user: str | None,
) -> None:
    if (ident is None) == (not every):
        _fail("give a distribution id or --all", 2)
    by = _who(user)
    if ident is not None:
        if verb == "retry":
            data = _call(ctx, "POST", f"/distributions/{ident}/retry", {"by": by})
        else:
            data = _call(ctx, "DELETE", f"/distributions/{ident}?by={quote(by, safe='')}")
    else:
        data = _call(ctx, "POST", f"/distributions/{verb}", {"element": element, "by": by})
    done = data["retried" if verb == "retry" else "deleted"]
    word = "retried" if verb == "retry" else "deleted"
    _say(", ".join(f"{name}: {count} {word}" for name, count in done.items()))


def _distribution_command(verb: str, summary: str) -> None:
    def command(
        ctx: typer.Context,
        ident: Annotated[int | None, typer.Argument(help="Distribution id.")] = None,
        every: Annotated[
            bool, typer.Option("--all", help="Every failed one (see --element).")
        ] = False,
        element: ElementOpt = None,
        user: UserOpt = None,
    ) -> None:
        _operate(ctx, verb, ident, every, element, user)

    command.__doc__ = summary
    distribution_app.command(verb)(command)


_distribution_command("retry", "Send failed distributions again.")
_distribution_command("delete", "Delete failed distributions: the element keeps what it has.")


# --------------------------------------------------------------------------- objects
def parse_fields(pairs: list[str]) -> dict[str, Any]:
    """FIELD=VALUE (a string) or FIELD:=JSON (a number, true, a list...), as httpie does."""
    fields: dict[str, Any] = {}
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


def _fields(pairs: list[str] | None) -> dict[str, Any]:
    try:
        return parse_fields(pairs or [])
    except ValueError as exc:
        _fail(str(exc), 2)


FieldsArg = Annotated[list[str] | None, typer.Argument(help="FIELD=VALUE or FIELD:=JSON ...")]


def _changed(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.print_json(data)
        return
    for change in data["changes"]:
        _say(
            f"{change['op']} {change['class']} {change['key']}: "
            f"{data['distributions']} distributions queued"
        )


@objects_app.command("add")
def objects_add(
    ctx: typer.Context, cls: str, key: str, fields: FieldsArg = None, as_json: JsonOpt = False
) -> None:
    """Add a shared object on the hub; it flows to every sharing element."""
    _changed(
        _call(
            ctx, "POST", f"/objects/{quote(cls, safe='')}", {"key": key, "data": _fields(fields)}
        ),
        as_json,
    )


@objects_app.command("set")
def objects_set(
    ctx: typer.Context, cls: str, key: str, fields: FieldsArg = None, as_json: JsonOpt = False
) -> None:
    """Change fields of a shared object (others are kept)."""
    data = _fields(fields)
    if not data:
        _fail("give at least one FIELD=VALUE", 2)
    _changed(
        _call(
            ctx, "PATCH", f"/objects/{quote(cls, safe='')}/{quote(key, safe='')}", {"data": data}
        ),
        as_json,
    )


@objects_app.command("delete")
def objects_delete(ctx: typer.Context, cls: str, key: str, as_json: JsonOpt = False) -> None:
    """Delete a shared object on the hub and on every sharing element."""
    _changed(_call(ctx, "DELETE", f"/objects/{quote(cls, safe='')}/{quote(key, safe='')}"), as_json)


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
    data: list[dict[str, Any]] = []
    after: str | None = None
    while limit is None or len(data) < limit:
        page_size = 5000 if limit is None else min(5000, limit - len(data))
        page = _call(ctx, "GET", f"/objects/{quote(cls, safe='')}", limit=page_size, after=after)
        data += page
        if len(page) < page_size:
            break
        after = page[-1]["key"]
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
    output.print_json(_call(ctx, "GET", f"/objects/{quote(cls, safe='')}/{quote(key, safe='')}"))
