"""``provsync``: run the agent and operate it through its control API.

Exit status: 0 success; 1 the agent refused or could not be reached, or a runtime error;
2 bad usage or a bad configuration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

try:  # typer carries its own click since 0.2x; older typer used click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

from agent import __version__
from agent.cli import failures, output
from agent.cli.common import (
    Context,
    JsonOpt,
    NoteOpt,
    UserOpt,
    _call,
    _ctx,
    _fail,
    _who,
)
from agent.cli.keys import keys_app
from agent.cli.sharing import distribution_app, objects_app, sharing_app
from agent.config import (
    ENV_CONFIG,
    default_document,
    load_settings,
)
from agent.errors import ConfigError, ProvsyncError
from agent.listen import bind_socket
from agent.store.element_types import DEFAULT_ELEMENT_TYPE, ELEMENT_TYPES, ELEMENT_TYPES_TEXT

app = typer.Typer(
    name="provsync",
    help="Provisioning sync agent: alarms, events and their export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
alarms_app = typer.Typer(help="See, raise, clear and acknowledge alarms.", no_args_is_help=True)
events_app = typer.Typer(help="See events.", no_args_is_help=True)
config_app = typer.Typer(help="Write and check configuration files.", no_args_is_help=True)
mib_app = typer.Typer(help="The PROVSYNC-MIB module.", no_args_is_help=True)
elements_app = typer.Typer(help="Network elements the agent syncs with.", no_args_is_help=True)
sync_app = typer.Typer(help="Run a sync of an element now.", no_args_is_help=True)
jobs_app = typer.Typer(help="Sync jobs.", no_args_is_help=True)
app.add_typer(alarms_app, name="alarms")
app.add_typer(events_app, name="events")
app.add_typer(config_app, name="config")
app.add_typer(mib_app, name="mib")
app.add_typer(elements_app, name="elements")
app.add_typer(sync_app, name="sync")
app.add_typer(jobs_app, name="jobs")
app.add_typer(sharing_app, name="sharing")
app.add_typer(distribution_app, name="distribution")
app.add_typer(objects_app, name="objects")
app.add_typer(keys_app, name="keys")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"provsync {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar=ENV_CONFIG,
            help="Configuration file (default: ./etc/provsync.toml, /etc/provsync/provsync.toml).",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(envvar="PROVSYNC_API_URL", help="Control API URL (default: from config)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="PROVSYNC_TOKEN",
            help="API token (default: from config or api.token).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Provisioning sync agent."""
    ctx.obj = Context(config, api_url, token)


# --------------------------------------------------------------------------- agent
@app.command()
def run(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Same as the global --config.", show_default=False),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Override [agent] data_dir.", show_default=False)
    ] = None,
) -> None:
    """Run the agent in the foreground until SIGTERM / SIGINT or `provsync stop`."""
    from agent.app import run_agent
    from agent.logs import setup_logging

    if config is not None:
        _ctx(ctx).config = config
    settings = _ctx(ctx).settings()
    if data_dir is not None:
        settings = settings.model_copy(
            update={"agent": settings.agent.model_copy(update={"data_dir": data_dir})}
        )
    # Checked before anything starts: a data directory that cannot work is bad usage.
    problem = failures.prepare_directory(settings.data_dir)
    if problem is not None:
        _fail(f"data directory {settings.data_dir}: {problem}", 2)
    setup_logging(settings.agent.log_level, settings.agent.log_format)
    try:
        run_agent(settings)
    except ConfigError as exc:
        _fail(str(exc), 2)
    except ProvsyncError as exc:
        _fail(failures.one_line(str(exc)))
    except OSError as exc:
        # The machine failed under the agent (a state file is a directory, the disk is full).
        _fail(f"agent failed: {failures.reason(exc)}")


@app.command()
def stop(ctx: typer.Context) -> None:
    """Ask the running agent to stop gracefully."""
    _call(ctx, "POST", "/shutdown")
    output.console.print("agent stopping")


@app.command()
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show whether the agent runs, its alarm counts and exporter cursors (exit 0 if up)."""
    data = _call(ctx, "GET", "/status")
    if as_json:
        output.print_json(data)
        return
    counts = data.get("active_alarms")
    # A fenced (or lost) store is not read: the agent answers without counts.
    state = data.get("store_state") or "unknown"
    if isinstance(counts, dict):
        alarms = (
            ", ".join(f"{k} {v}" for k, v in counts.items() if k != "total")
            + f" (total {counts.get('total', 0)})"
        )
    else:
        alarms = f"unknown (store {state})"
    output.console.print(
        f"provsync {data['version']} running (pid {data['pid']}) since {data['started_at']}\n"
        f"store {data['store']} ({state})  last sequence {data['last_seq']}\n"
        f"active alarms: {alarms}",
        highlight=False,
        markup=False,
    )
    if data["exporters"]:
        output.table(
            "Exporters",
            ["name", "cursor", "backlog", "delivered", "failures", "down for", "last error"],
            [
                [
                    e["name"],
                    e["cursor"],
                    e["backlog"],
                    e["delivered"],
                    e["failures"],
                    _down_for(e.get("down_for")),
                    e["last_error"],
                ]
                for e in data["exporters"]
            ],
        )


def _down_for(seconds: float | None) -> str:
    """How long a target has been failing, as a person reads it at a console."""
    if seconds is None:
        return ""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@app.command()
def catalog(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the alarm and event types (alarm inventory)."""
    data = _call(ctx, "GET", "/catalog")
    if as_json:
        output.print_json(data)
        return
    output.table(
        "Alarm inventory",
        ["id", "kind", "severity", "name", "event type", "probable cause"],
        [
            [
                t["id"],
                t["kind"],
                output.severity(t["severity"]),
                t["name"],
                t["event_type"],
                t["probable_cause"],
            ]
            for t in data
        ],
    )


# --------------------------------------------------------------------------- alarms
def _print_record(title: str, data: dict[str, Any], nested: str | None = None) -> None:
    """A record as a field/value table; ``nested`` (a list or mapping) is left out."""
    output.table(title, ["field", "value"], [(k, v) for k, v in data.items() if k != nested])


def _print_change(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.print_json(data)
        return
    alarm = data["alarm"]
    seq = f" (seq {data['seq']})" if data["seq"] else " (no change notified)"
    output.console.print(
        f"alarm {alarm['id']} {alarm['type']} {alarm['resource']}: {data['change']}{seq}; "
        f"severity {alarm['severity']}, {alarm['state']}, count {alarm['count']}",
        highlight=False,
        markup=False,
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
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """List active alarms (--all adds cleared ones)."""
    state = "all" if show_all else "cleared" if cleared else "active"
    data = _call(
        ctx,
        "GET",
        "/alarms",
        state=state,
        severity=severity,
        type=type_id,
        resource=resource,
        limit=limit,
    )
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


@alarms_app.command("show")
def alarms_show(ctx: typer.Context, alarm_id: int, as_json: JsonOpt = False) -> None:
    """Show one alarm with its history."""
    data = _call(ctx, "GET", f"/alarms/{alarm_id}")
    if as_json:
        output.print_json(data)
        return
    _print_record(f"Alarm {alarm_id}", data, "history")
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
    body = {
        "type": type_id,
        "resource": resource,
        "qualifier": qualifier,
        "severity": severity,
        "text": text,
        "by": _who(user),
    }
    _print_change(_call(ctx, "POST", "/alarms", body), as_json)


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
    if target.isdigit():
        if resource is not None:
            _fail("give either an alarm id or TYPE --resource R, not both", 2)
        data = _call(ctx, "POST", f"/alarms/{target}/clear", {"note": note, "by": _who(user)})
    else:
        if resource is None:
            _fail(f"clearing by type needs --resource (provsync alarms clear {target} -r R)", 2)
        body = {
            "type": target,
            "resource": resource,
            "qualifier": qualifier,
            "note": note,
            "by": _who(user),
        }
        data = _call(ctx, "POST", "/alarms/clear", body)
    _print_change(data, as_json)


def _operator_command(action: str, summary: str) -> None:
    def command(
        ctx: typer.Context,
        alarm_id: int,
        note: NoteOpt = None,
        user: UserOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        body = {"note": note, "by": _who(user)}
        _print_change(_call(ctx, "POST", f"/alarms/{alarm_id}/{action}", body), as_json)

    command.__doc__ = summary
    alarms_app.command(action)(command)


_operator_command("ack", "Acknowledge an alarm.")
_operator_command("unack", "Withdraw the acknowledgement of an alarm.")


@alarms_app.command("test")
def alarms_test(
    ctx: typer.Context,
    text: Annotated[str, typer.Option("--text")] = "",
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a test notification to every export target."""
    data = _call(ctx, "POST", "/test", {"text": text, "by": _who(user)})
    if as_json:
        output.print_json(data)
        return
    targets = ", ".join(data["targets"]) or "no export target configured"
    output.console.print(
        f"test notification seq {data['seq']} queued for: {targets}", highlight=False, markup=False
    )


# --------------------------------------------------------------------------- events
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
    data = _call(
        ctx,
        "GET",
        "/events",
        type=type_id,
        resource=resource,
        severity=severity,
        after=after,
        limit=limit,
    )
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


# --------------------------------------------------------------------------- config
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
        _fail(f"{out} exists; use --force to overwrite it", 1)
    if (blocker := failures.blocking_file(out.parent)) is not None:
        _fail(f"cannot write {out}: {blocker} is not a directory", 2)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # The file holds the API token: readable by its owner only.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}", failures.exit_code(exc))
    output.console.print(f"wrote {out}", highlight=False, markup=False)


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="Configuration file.")]) -> None:
    """Validate a configuration file (exit 2 with the file and key path when it is wrong)."""
    try:
        load_settings(path)
    except ConfigError as exc:
        _fail(str(exc), 2)
    output.console.print(f"{path}: OK", highlight=False, markup=False)


# --------------------------------------------------------------------------- elements
def _read_password(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}", 2)


@elements_app.command("add")
def elements_add(
    ctx: typer.Context,
    name: str,
    url: Annotated[str, typer.Option("--url", help="Element API v1 base URL.")],
    element_type: Annotated[str, typer.Option("--type")] = DEFAULT_ELEMENT_TYPE,
    connector: Annotated[str, typer.Option(help="Connector driver.")] = "http",
    username: Annotated[str | None, typer.Option()] = None,
    password_file: Annotated[Path | None, typer.Option(help="File holding the password.")] = None,
    interval: Annotated[
        str | None, typer.Option(help="Incremental sync schedule, e.g. 24h; 0s: none.")
    ] = None,
    cron: Annotated[str, typer.Option(help="Crontab schedule (UTC) instead of --interval.")] = "",
    uses: Annotated[
        str, typer.Option(help="Messaging elements: the network elements they use (a,b).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Add an element; an initialization sync is queued at once."""
    from agent.durations import parse_duration

    seconds = None
    if interval is not None:
        try:
            seconds = int(parse_duration(interval))
        except ValueError as exc:
            _fail(str(exc), 2)
    body = {
        "name": name,
        "type": element_type,
        "url": url,
        "connector": connector,
        "username": username,
        "password": _read_password(password_file),
        "interval": seconds,
        "cron": cron,
        "uses": [n.strip() for n in uses.split(",") if n.strip()],
    }
    data = _call(ctx, "POST", "/elements", body)
    if as_json:
        output.print_json(data)
        return
    output.console.print(
        f"added {name}; initialization sync queued as job {data['job']}",
        highlight=False,
        markup=False,
    )


@elements_app.command("list")
def elements_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List elements with their sync state."""
    data = _call(ctx, "GET", "/elements")
    if as_json:
        output.print_json(data)
        return
    output.table(
        f"Elements: {len(data)}",
        ["name", "type", "state", "version", "cursor", "last sync", "address"],
        [
            [
                e["name"],
                e["type"],
                e["sync_state"],
                e["software_version"],
                e["cursor"],
                output.when(e["last_sync_at"]),
                e["address"],
            ]
            for e in data
        ],
    )


@elements_app.command("show")
def elements_show(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """One element: sync state, cursor, epoch, version, objects per class."""
    data = _call(ctx, "GET", f"/elements/{name}")
    if as_json:
        output.print_json(data)
        return
    _print_record(f"Element {name}", data, "objects")
    output.table("Objects", ["class", "count"], sorted(data.get("objects", {}).items()))


@elements_app.command("set-schedule")
def elements_set_schedule(
    ctx: typer.Context,
    name: str,
    interval: Annotated[str | None, typer.Option(help="e.g. 12h; 0s: no interval.")] = None,
    cron: Annotated[
        str | None, typer.Option(help='Crontab (UTC), e.g. "0 2 * * *"; "" clears it.')
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change when the element's recurring incremental sync runs."""
    from agent.durations import parse_duration

    body: dict[str, Any] = {}
    if interval is not None:
        try:
            body["interval"] = int(parse_duration(interval))
        except ValueError as exc:
            _fail(str(exc), 2)
    if cron is not None:
        body["cron"] = cron
    if not body:
        _fail("give --interval and/or --cron", 2)
    data = _call(ctx, "PATCH", f"/elements/{name}", body)
    if as_json:
        output.print_json(data)
        return
    schedule = f"cron {data['cron']}" if data["cron"] else f"every {data['interval']} s"
    output.console.print(f"{name}: incremental sync {schedule}", highlight=False, markup=False)


@elements_app.command("remove")
def elements_remove(ctx: typer.Context, name: str) -> None:
    """Remove an element and the hub's copy of its data."""
    _call(ctx, "DELETE", f"/elements/{name}")
    output.console.print(f"removed {name}", highlight=False, markup=False)


@elements_app.command("activate")
def elements_activate(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Activate a messaging element: it takes the current programming of the elements it uses."""
    data = _call(ctx, "POST", f"/elements/{name}/activate", {})
    if as_json:
        output.print_json(data)
        return
    used = ", ".join(e["name"] for e in data["elements"]) or "no element"
    output.console.print(f"activated {name} ({used})", highlight=False, markup=False)


@elements_app.command("set-address")
def elements_set_address(ctx: typer.Context, name: str, url: str) -> None:
    """Move an element to another address (messaging elements using it need activation)."""
    _call(ctx, "PATCH", f"/elements/{name}", {"url": url})
    output.console.print(f"{name} is at {url}", highlight=False, markup=False)


@elements_app.command("set-credentials")
def elements_set_credentials(
    ctx: typer.Context,
    name: str,
    username: Annotated[str, typer.Option()],
    password_file: Annotated[Path, typer.Option(help="File holding the password.")],
) -> None:
    """Set the username and password the agent logs in to the element with."""
    body = {"username": username, "password": _read_password(password_file) or ""}
    _call(ctx, "PUT", f"/elements/{name}/credentials", body)
    output.console.print(f"credentials of {name} set", highlight=False, markup=False)


# --------------------------------------------------------------------------- sync, jobs
def _wait_for(ctx: typer.Context, job_id: int) -> dict[str, Any]:
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.errors,
        transient=True,
    ) as progress:
        task = progress.add_task(f"job {job_id}", total=None)
        while True:
            job = _call(ctx, "GET", f"/jobs/{job_id}")
            counts = job.get("counts") or {}
            progress.update(
                task,
                description=f"job {job_id} {job['kind']} {job['state']}",
                completed=counts.get("progress", 0),
                total=counts.get("total") or None,
            )
            if job["state"] in ("done", "failed"):
                return dict(job)
            time.sleep(0.2)


def _sync_command(kind: str, summary: str) -> None:
    def command(
        ctx: typer.Context,
        name: str,
        wait: Annotated[bool, typer.Option("--wait", help="Wait and show the result.")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="force: report only.")] = False,
        yes: Annotated[bool, typer.Option("--yes", help="force: allow deleting hub data.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        body = {"kind": kind, "dry_run": dry_run, "yes": yes}
        job_id = _call(ctx, "POST", f"/elements/{name}/sync", body)["job"]
        if not (wait or dry_run):
            if as_json:
                output.print_json({"job": job_id})
            else:
                output.console.print(
                    f"{kind} sync of {name} queued as job {job_id}", highlight=False, markup=False
                )
            return
        job = _wait_for(ctx, job_id)
        if as_json:
            output.print_json(job)
        else:
            detail = job["error"] or output.json_line(job["counts"])
            output.console.print(
                f"job {job_id} {job['kind']} {job['state']}: {detail}",
                highlight=False,
                markup=False,
            )
        if job["state"] == "failed":
            raise typer.Exit(1)

    command.__doc__ = summary
    sync_app.command(kind)(command)


_sync_command("init", "Initialization (full) sync of an element.")
_sync_command("incremental", "Incremental sync of an element from its change log.")
_sync_command("force", "Forced initialization without the discrepancy check (--dry-run, --yes).")


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    element: Annotated[str | None, typer.Option("--element", "-e")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Sync jobs, oldest first."""
    data = _call(ctx, "GET", "/jobs", element=element, limit=limit)
    if as_json:
        output.print_json(data)
        return
    output.table(
        f"Jobs: {len(data)}",
        ["id", "element", "kind", "trigger", "state", "started", "ended", "error"],
        [
            [
                j["id"],
                j["element"],
                j["kind"],
                j["trigger"],
                j["state"],
                output.when(j["started"]),
                output.when(j["ended"]),
                j["error"] or "",
            ]
            for j in data
        ],
    )


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """One sync job."""
    data = _call(ctx, "GET", f"/jobs/{job_id}")
    if as_json:
        output.print_json(data)
        return
    _print_record(f"Job {job_id}", data)


# --------------------------------------------------------------------------- demo
@app.command()
def demo(
    exit_after_setup: Annotated[
        bool, typer.Option(help="Stop once set up (for scripts and tests).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the agent with three simulated elements (call server, small office, messaging)."""
    from agent.cli.demo import run_demo

    def say(text: str) -> None:
        if not as_json:
            output.console.print(text, highlight=False, markup=False)

    result = run_demo(say, stay=not exit_after_setup)
    if as_json:
        output.print_json(result)
    if any(state != "done" for state in result["jobs"].values()):
        _fail(f"some demo syncs did not complete: {result['jobs']}")


# --------------------------------------------------------------------------- simulate
@app.command()
def simulate(
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to serve on.")] = 9001,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    element_type: Annotated[
        str, typer.Option("--type", help=f"{ELEMENT_TYPES_TEXT}.")
    ] = DEFAULT_ELEMENT_TYPE,
    objects: Annotated[int, typer.Option(min=0, help="Objects to generate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 1,
    element_id: Annotated[str | None, typer.Option(help="Default: sim-PORT.")] = None,
    software_version: Annotated[str, typer.Option()] = "10.2.1",
    username: Annotated[str, typer.Option(help="Username the element accepts.")] = "admin",
    password_file: Annotated[
        Path | None, typer.Option(help="File holding the password (default: none needed).")
    ] = None,
    hub: Annotated[str, typer.Option(help="The hub's control API URL, to call it.")] = "",
    hub_token_file: Annotated[
        Path | None, typer.Option(help="File holding the hub's element token.")
    ] = None,
) -> None:
    """Run a reference network element serving Element API v1 (docs/element-api.md)."""
    import uvicorn

    from agent.logs import setup_logging
    from agent.simulator.app import Faults, Simulator, create_simulator_app
    from agent.simulator.state import ElementState

    if element_type not in ELEMENT_TYPES:
        _fail(f"--type must be {ELEMENT_TYPES_TEXT}", 2)
    password = ""
    if password_file is not None:
        try:
            password = password_file.read_text().strip()
        except OSError as exc:
            _fail(f"cannot read {password_file}: {exc.strerror}", 2)
    state = ElementState(element_id or f"sim-{port}", element_type, software_version)
    state.generate(objects, seed)
    hub_token = ""
    if hub_token_file is not None:
        try:
            hub_token = hub_token_file.read_text().strip()
        except OSError as exc:
            _fail(f"cannot read {hub_token_file}: {exc.strerror}", 2)
    if hub and not hub.startswith(("http://", "https://")):
        _fail("--hub must be a URL such as http://127.0.0.1:8163", 2)
    simulator = Simulator(state, username, password, Faults(), hub.rstrip("/"), hub_token)
    # Bound here, not by uvicorn: a taken port is one line and exit 1, not uvicorn's exit 3.
    try:
        sock = bind_socket(host, port, "simulator")
    except ProvsyncError as exc:
        _fail(str(exc))
    setup_logging("WARNING")
    output.errors.print(
        f"simulated {element_type} {state.element_id} on http://{host}:{port} "
        f"({sum(state.counts().values())} objects)",
        highlight=False,
        markup=False,
    )
    config = uvicorn.Config(create_simulator_app(simulator), log_config=None, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


# --------------------------------------------------------------------------- mib
@mib_app.command("export")
def mib_export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the MIB into.")],
    root: Annotated[
        str | None,
        typer.Option(help="Enterprise OID to root the module at (default: [snmp] enterprise_oid)."),
    ] = None,
    module: Annotated[
        str | None,
        typer.Option(
            help="Module name (default: PROVSYNC-MIB at the default root, "
            "PROVSYNC-<arcs below enterprises>-MIB elsewhere)."
        ),
    ] = None,
) -> None:
    """Write the PROVSYNC-MIB module rooted where the agent serves it, as <module>.txt."""
    from agent.export.snmp.mibtext import default_module_name, export
    from agent.oids import parse_oid

    text_root = root or _ctx(ctx).settings().snmp.enterprise_oid
    try:
        arcs = parse_oid(text_root)
        name = module if module is not None else default_module_name(arcs)
        path = export(out, arcs, name)
    except ValueError as exc:
        _fail(str(exc), 2)
    except OSError as exc:
        _fail(f"cannot write to {out}: {exc.strerror}")
    # soft_wrap: a long path stays one line a script can read back.
    output.console.print(
        f"wrote {path} (module {name}, root {text_root})",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def main() -> None:
    try:
        # Not standalone: click's usage errors come here to be told in one line.
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()  # a group without its command: the group's help, as before
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else None
        output.error(failures.usage_line(exc.format_message(), path))
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        output.error(failures.one_line(exc.format_message()))
        sys.exit(exc.exit_code)
    except typer.Abort:
        output.error("aborted")
        sys.exit(1)
    except ConfigError as exc:
        output.error(str(exc))
        sys.exit(2)
    except ProvsyncError as exc:
        output.error(str(exc))
        sys.exit(1)
    except OSError as exc:
        output.error(failures.reason(exc))
        sys.exit(1)
    # typer.Exit (every _fail) comes back as its code; a command's return value is not one.
    sys.exit(code if isinstance(code, int) else 0)
