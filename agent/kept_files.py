"""Every file the agent itself keeps, wherever configured: what the start tightens.

Above the components it names (the SNMP engine's state, the sharing identity, the store,
the file exporters); agent.file_modes, below the store, only knows how to tighten them.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from agent.config import Settings
from agent.export.snmp.engine import STATE_FILE
from agent.sharing.service import IDENTITY_FILE

_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal", ".lock")


def agent_files(settings: Settings) -> list[Path]:
    """Every file the agent itself keeps, wherever configured (outside the data dir too)."""
    data_dir = settings.data_dir
    files = [
        settings.token_file,
        settings.element_token_file,
        settings.store_key_file,
        data_dir / STATE_FILE,
        data_dir / IDENTITY_FILE,
    ]
    url = make_url(settings.store_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database)
        files += [database.with_name(database.name + suffix) for suffix in _SQLITE_SUFFIXES]
    for exporter in settings.exporters.file:
        path = settings.exporter_path(exporter.path)
        backups = range(1, exporter.backups + 1)
        files += [path, *(path.with_name(f"{path.name}.{n}") for n in backups)]
    return files
