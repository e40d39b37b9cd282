"""``provsync distribution``: hub updates on their way to the elements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from agent.cli import output
from agent.cli.client import Client
from agent.cli.common import ElementOpt, JsonOpt, UserOpt, connect, fail, say, who

distribution_app = typer.Typer(
    help="Hub updates on their way to the elements.", no_args_is_help=True
)


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
    with connect(ctx) as api:
        data = api.distributions(element, state, limit)
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


def _retried(api: Client, ident: int | None, by: str, element: str | None) -> dict[str, int]:
    if ident is not None:
        return api.retry_distribution(ident, by)["retried"]
    return api.retry_distributions(by, element)["retried"]


def _deleted(api: Client, ident: int | None, by: str, element: str | None) -> dict[str, int]:
    if ident is not None:
        return api.delete_distribution(ident, by)["deleted"]
    return api.delete_distributions(by, element)["deleted"]


# One distribution (by id) or every failed one (of an element): how many, per element.
Operation = Callable[[Client, int | None, str, str | None], dict[str, int]]


def _distribution_command(verb: str, done: str, operation: Operation, summary: str) -> None:
    def command(
        ctx: typer.Context,
        ident: Annotated[int | None, typer.Argument(help="Distribution id.")] = None,
        every: Annotated[
            bool, typer.Option("--all", help="Every failed one (see --element).")
        ] = False,
        element: ElementOpt = None,
        user: UserOpt = None,
    ) -> None:
        if (ident is None) == (not every):
            fail("give a distribution id or --all", 2)
        by = who(user)
        with connect(ctx) as api:
            counts = operation(api, ident, by, element)
        say(", ".join(f"{name}: {count} {done}" for name, count in counts.items()))

    command.__doc__ = summary
    distribution_app.command(verb)(command)


_distribution_command("retry", "retried", _retried, "Send failed distributions again.")
_distribution_command(
    "delete",
    "deleted",
    _deleted,
    "Delete failed distributions: the element keeps what it has.",
)
