"""What every CLI command module shares: the context, API calls, options, failures."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from agent.cli import output
from agent.cli.client import Client, api_url_for, token_for
from agent.config import Settings, find_config, load_settings
from agent.errors import ApiError, ProvsyncError

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
NoteOpt = Annotated[str | None, typer.Option("--note", "-n", help="Operator note.")]
UserOpt = Annotated[
    str | None, typer.Option("--user", help="Who does it (default: your login name).")
]


@dataclass
class Context:
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
            _fail(f"--api-url {url!r} is not a valid URL: {exc}", 2)


def _fail(message: str, code: int = 1) -> NoReturn:
    output.error(message)
    raise typer.Exit(code)


def _ctx(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj


def _call(ctx: typer.Context, method: str, path: str, body: Any = None, **params: Any) -> Any:
    client = _ctx(ctx).client()
    try:
        if method == "GET":
            return client.get(path, **params)
        if method == "POST":
            return client.post(path, body)
        return client.request(method, path, json=body)
    except ApiError as exc:
        _fail(str(exc))
    except ProvsyncError as exc:
        _fail(str(exc))
    finally:
        client.close()


def _who(user: str | None) -> str:
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
