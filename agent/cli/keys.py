"""``provsync keys``: the key that encrypts element credentials in the store.

Rotation runs with the agent stopped: it takes the store's ownership lock like an agent
does, so a running agent makes it fail at once (exit 1) instead of racing it.
"""

from __future__ import annotations

import typer

from agent.cli import output
from agent.cli.common import _ctx, _fail
from agent.errors import ProvsyncError

keys_app = typer.Typer(help="The key that encrypts element credentials in the store.",
                       no_args_is_help=True)  # fmt: skip


@keys_app.command("rotate")
def rotate(ctx: typer.Context) -> None:
    """Re-encrypt every stored credential with a new key, then drop the old key (agent stopped)."""
    from agent.file_modes import private_umask
    from agent.logs import setup_logging
    from agent.store.database import Store
    from agent.store.encryption import rotate_key

    settings = _ctx(ctx).settings()
    # The outcome is printed below; the log only adds warnings (modes tightened, ...).
    setup_logging("WARNING", settings.agent.log_format)
    if settings.store.url == "" and not (settings.data_dir / "provsync.db").exists():
        _fail(f"no store in {settings.data_dir}: nothing to rotate")
    key_file = settings.store_key_file
    with private_umask():
        store = Store(settings.store_url, sqlite_synchronous=settings.store.sqlite_synchronous)
        try:
            store.open()
        except ProvsyncError as exc:
            _fail(str(exc))
        try:
            result = rotate_key(key_file, store.engine)
        except ProvsyncError as exc:
            _fail(str(exc))
        finally:
            store.close()
    output.console.print(
        f"store key rotated to {result.new_key} in {key_file}: {result.resealed} element "
        f"credential(s) re-encrypted; old key {', '.join(result.dropped)} dropped",
        highlight=False, markup=False,
    )  # fmt: skip
