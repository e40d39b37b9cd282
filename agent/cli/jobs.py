"""``provsync sync|jobs``: run a sync of an element now, and see sync jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli import output
from agent.cli.api_types import Job
from agent.cli.client import Client
from agent.cli.common import JsonOpt, connect, print_record, say

sync_app = typer.Typer(help="Run a sync of an element now.", no_args_is_help=True)
jobs_app = typer.Typer(help="Sync jobs.", no_args_is_help=True)


def _wait_for(api: Client, job_id: int) -> Job:
    """The job once ended, with a progress bar on standard error meanwhile."""
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

        def show(job: Job) -> None:
            counts = job.get("counts") or {}
            progress.update(
                task,
                description=f"job {job_id} {job['kind']} {job['state']}",
                completed=counts.get("progress", 0),
                total=counts.get("total") or None,
            )

        return api.wait_job(job_id, on_poll=show)


WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait and show the result.")]


def _run_sync(
    ctx: typer.Context,
    name: str,
    kind: str,
    wait: bool,
    as_json: bool,
    *,
    dry_run: bool = False,
    yes: bool = False,
) -> None:
    with connect(ctx) as api:
        job_id = api.sync(name, kind, dry_run, yes)["job"]
        if not (wait or dry_run):
            if as_json:
                output.print_json({"job": job_id})
            else:
                say(f"{kind} sync of {name} queued as job {job_id}")
            return
        job = _wait_for(api, job_id)
    if as_json:
        output.print_json(job)
    else:
        detail = job["error"] or output.json_line(job["counts"])
        say(f"job {job_id} {job['kind']} {job['state']}: {detail}")
    if job["state"] == "failed":
        raise typer.Exit(1)


@sync_app.command("init")
def sync_init(
    ctx: typer.Context, name: str, wait: WaitOpt = False, as_json: JsonOpt = False
) -> None:
    """Initialization (full) sync of an element."""
    _run_sync(ctx, name, "init", wait, as_json)


@sync_app.command("incremental")
def sync_incremental(
    ctx: typer.Context, name: str, wait: WaitOpt = False, as_json: JsonOpt = False
) -> None:
    """Incremental sync of an element from its change log."""
    _run_sync(ctx, name, "incremental", wait, as_json)


@sync_app.command("force")
def sync_force(
    ctx: typer.Context,
    name: str,
    wait: WaitOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what it would do (waits for it).")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Allow it to delete the hub's data of the element.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Forced initialization without the discrepancy check (--dry-run first, then --yes)."""
    _run_sync(ctx, name, "force", wait, as_json, dry_run=dry_run, yes=yes)


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    element: Annotated[str | None, typer.Option("--element", "-e")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Sync jobs, oldest first."""
    with connect(ctx) as api:
        data = api.jobs(element, limit)
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
    with connect(ctx) as api:
        data = api.job(job_id)
    if as_json:
        output.print_json(data)
        return
    print_record(f"Job {job_id}", data)
