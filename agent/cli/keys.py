"""``provsync keys``: the key that encrypts element credentials in the store.

Both commands run with the agent stopped: they take the store's ownership lock like an
agent does, so a running agent makes them fail at once (exit 1) instead of racing it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.common import context_of, fail, say
from agent.errors import ProvsyncError

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic) loads only for these commands
    from agent.store.database import Store

keys_app = typer.Typer(
    help="The key that encrypts element credentials in the store.", no_args_is_help=True
)


@contextlib.contextmanager
def _owned_store(ctx: typer.Context) -> Iterator[Store]:
    """The store opened as an agent opens it (lock taken): fails at once if one runs."""
    from agent.file_modes import private_umask
    from agent.logs import setup_logging
    from agent.store.database import Store

    settings = context_of(ctx).settings()
    # The outcome is printed; the log only adds warnings (modes tightened, ...).
    setup_logging("WARNING", settings.agent.log_format)
    if settings.store.url == "" and not (settings.data_dir / "provsync.db").exists():
        fail(f"no store in {settings.data_dir}")
    with private_umask():
        store = Store(settings.store_url, sqlite_synchronous=settings.store.sqlite_synchronous)
        try:
            store.open()
        except ProvsyncError as exc:
            fail(str(exc))
        try:
            yield store
        finally:
            store.close()


@keys_app.command("rotate")
def rotate(ctx: typer.Context) -> None:
    """Re-encrypt every stored credential with a new key, then drop the old key (agent stopped)."""
    from agent.store.encryption import rotate_key

    key_file = context_of(ctx).settings().store_key_file
    with _owned_store(ctx) as store:
        try:
            result = rotate_key(key_file, store.engine)
        except ProvsyncError as exc:
            fail(str(exc))
    say(
        f"store key rotated to {result.new_key} in {key_file}: {result.resealed} element "
        f"credential(s) re-encrypted; old key {', '.join(result.dropped)} dropped"
    )


@keys_app.command("reset")
def reset(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Yes, forget them.")] = False,
) -> None:
    """The key is lost: forget the credentials no key decrypts (agent stopped); set them again."""
    from agent.store.encryption import reset_key

    if not yes:
        fail(
            "keys reset forgets every stored credential that no key of the key file "
            "decrypts; add --yes to go ahead",
            2,
        )
    settings = context_of(ctx).settings()
    with _owned_store(ctx) as store:
        try:
            names = reset_key(settings.store_key_file, store.engine)
        except ProvsyncError as exc:
            fail(str(exc))
    if names:
        say(
            f"forgot the credentials of {', '.join(names)}: set them again with "
            "`provsync elements set-credentials NAME`"
        )
    else:
        say(f"every stored credential decrypts with {settings.store_key_file}: nothing forgotten")
