"""What every CLI command module shares: the context, the API client, options, failures."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer

from agent.cli import output
from agent.cli.client import Client
from agent.config import Settings, find_config, load_settings, parse_address, read_token_file
from agent.errors import ProvsyncError

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
NoteOpt = Annotated[str | None, typer.Option("--note", "-n", help="Operator note.")]
UserOpt = Annotated[
    str | None, typer.Option("--user", help="Who does it (default: your login name).")
]
ElementOpt = Annotated[str | None, typer.Option("--element", "-e", help="Only this element.")]


def api_url_for(settings: Settings) -> str:
    host, port = parse_address(settings.api.listen)
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard bind to a reachable address
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def token_for(settings: Settings) -> str | None:
    return settings.api.token or read_token_file(settings.token_file)


@dataclass
class Context:
    """The root options, for every command."""

    config: Path | None
    api_url: str | None
    token: str | None

    def settings(self) -> Settings:
        return load_settings(find_config(self.config))

    def client(self) -> Client:
        settings = self.settings()
        url = self.api_url or api_url_for(settings)
        try:
            return Client(url, self.token or token_for(settings))
        except httpx.InvalidURL as exc:
            fail(f"--api-url {url!r} is not a valid URL: {exc}", 2)


def fail(message: str, code: int = 1) -> NoReturn:
    output.error(message)
    raise typer.Exit(code)


def context_of(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj


@contextlib.contextmanager
def connect(ctx: typer.Context) -> Iterator[Client]:
    """The agent's API for the calls in the block; a refusal or an agent that cannot be
    reached ends the command with its one-line reason (exit 1).

    A configuration that cannot be loaded is not caught: main() reports it (exit 2).
    """
    client = context_of(ctx).client()
    try:
        yield client
    except ProvsyncError as exc:
        fail(str(exc))
    finally:
        client.close()


def who(user: str | None) -> str:
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def say(text: str) -> None:
    """One line of output as is: values are data, never rich markup, and never folded at
    the console's width (a line may hold JSON, which a fold would break mid-token)."""
    output.console.print(text, highlight=False, markup=False, soft_wrap=True)


def print_record(title: str, data: Mapping[str, object], nested: str | None = None) -> None:
    """A record as a field/value table; ``nested`` (a list or mapping) is left out."""
    output.table(title, ["field", "value"], [(k, v) for k, v in data.items() if k != nested])
