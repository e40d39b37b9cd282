"""``provsync run|stop|status|catalog``: the agent itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import failures, output
from agent.cli.api_types import AgentStatus, VendorName
from agent.cli.common import JsonOpt, connect, context_of, fail, say
from agent.errors import ConfigError, ProvsyncError


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
    from agent.cluster.standby import run_cluster_agent
    from agent.logs import setup_logging

    if config is not None:
        context_of(ctx).config = config
    settings = context_of(ctx).settings()
    if data_dir is not None:
        settings = settings.model_copy(
            update={"agent": settings.agent.model_copy(update={"data_dir": data_dir})}
        )
    # Checked before anything starts: a data directory that cannot work is bad usage.
    problem = failures.prepare_directory(settings.data_dir)
    if problem is not None:
        fail(f"data directory {settings.data_dir}: {problem}", 2)
    setup_logging(settings.agent.log_level, settings.agent.log_format)
    try:
        # A [cluster] member stands by while another agent leads the store.
        (run_cluster_agent if settings.cluster.enabled else run_agent)(settings)
    except ConfigError as exc:
        fail(str(exc), 2)
    except ProvsyncError as exc:
        fail(failures.one_line(str(exc)))
    except OSError as exc:
        # The machine failed under the agent (a state file is a directory, the disk is full).
        fail(f"agent failed: {failures.reason(exc)}")


def stop(ctx: typer.Context) -> None:
    """Ask the running agent to stop gracefully."""
    with connect(ctx) as api:
        api.shutdown()
    output.console.print("agent stopping")


def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show whether the agent runs, its alarm counts and exporter cursors (exit 0 if up)."""
    with connect(ctx) as api:
        data = api.status()
    if as_json:
        output.print_json(data)
        return
    if data.get("role") == "standby":
        say(
            f"provsync {data['version']} standby (pid {data['pid']}) since "
            f"{data['started_at']}\nnode {data.get('node')}  store {data['store']}\n"
            f"{_leader_line(data)}{_members_line(data)}"
        )
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
    say(
        f"provsync {data['version']} running (pid {data['pid']}) since {data['started_at']}\n"
        f"store {data['store']} ({state})  last sequence {data['last_seq']}\n"
        f"active alarms: {alarms}\n"
        f"node {data.get('node')}  role {data.get('role', 'leader')}  {_leader_line(data)}"
        f"{_members_line(data)}"
    )
    if data.get("exporters"):
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
                for e in data.get("exporters", [])
            ],
        )


def _members_line(data: AgentStatus) -> str:
    """Each [cluster] member's role and last heartbeat, on one line ("" without members)."""
    members = data.get("members") or []
    if not members:
        return ""
    parts = [
        f"{m['node']} {m['role']} {m['heartbeat_age']:.1f}s ago" + (" (gone)" if m["gone"] else "")
        for m in members
    ]
    return "\nmembers: " + ", ".join(parts)


def _leader_line(data: AgentStatus) -> str:
    leader = data.get("leader")
    if not leader:
        return "leader: none right now"
    where = f" at {leader['api_url']}" if leader.get("api_url") else ""
    return f"leader: {leader['node']}{where}"


def cluster(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the agents of the store ([cluster]): role, API URL, last heartbeat; * leads."""
    with connect(ctx) as api:
        data = api.status()
    members = data.get("members", [])
    if as_json:
        output.print_json(
            {"node": data.get("node"), "leader": data.get("leader"), "members": members}
        )
        return
    if not members:
        say(f"{data.get('node')} runs alone on its store (no [cluster] members)")
        return
    output.table(
        "Cluster members",
        ["", "node", "role", "api url", "pid", "heartbeat"],
        [
            [
                "*" if m["leader"] else "",
                m["node"],
                m["role"],
                m["api_url"],
                m["pid"],
                f"{m['heartbeat_age']:.1f}s ago" + (" (gone)" if m["gone"] else ""),
            ]
            for m in members
        ],
    )
    say(_leader_line(data))


def _down_for(seconds: float | None) -> str:
    """How long a target has been failing, as a person reads it at a console."""
    if seconds is None:
        return ""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def catalog(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the alarm and event types with the vendors' names for them (--json: every field)."""
    with connect(ctx) as api:
        data = api.catalog()
    if as_json:
        output.print_json(data)
        return
    # The vendor's name beside ours is what a NOC maps by; the X.733 fields would push it
    # off an 80-160 column terminal (they are in --json, the MIB and docs/alarms.md).
    output.table(
        "Alarm inventory",
        ["id", "kind", "severity", "name", "vendor name"],
        [
            [
                t["id"],
                t["kind"],
                output.severity(t["severity"]),
                t["name"],
                _vendor(t["vendor"]),
            ]
            for t in data
        ],
    )


def _vendor(vendor: VendorName | None) -> str:
    """The vendor's name with the product showing it, for a NOC that knows that console."""
    if vendor is None:
        return "no vendor counterpart"
    return f"{vendor['name']} ({vendor['product']})"
