"""Private files: the data directory and the files the agent keeps in it, owner only.

The agent runs with umask 077 (:func:`private_umask`), so every file and directory it or a
library creates is private whatever the operator's umask. What an older release or a
wide umask left behind is tightened on start, with one warning naming it.

Tightening only clears group and other bits; owner bits are never added or removed. It
touches the data directory itself and the files the agent keeps there, named one by one
(agent.kept_files, above the components that name them), never anything else in it and
never a subdirectory: a data_dir set by mistake to an install directory or a home keeps
its scripts and their exec bits.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from loguru import logger

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside get no group or other bits; the previous umask comes back after."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (an empty SQLite file is valid)."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.close(fd)


def tighten(path: Path) -> bool:
    """Clear the group and other bits of ``path`` (not following links); True if it had any.

    Owner bits stay as they are: an executable stays executable, a read-only file read-only.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    current = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode) or not current & 0o077:
        return False
    path.chmod(current & ~0o077)
    return True


def secure_data_dir(data_dir: Path, files: Iterable[Path] = ()) -> None:
    """Create the data directory 0700; clear group/other bits of it and of ``files`` in it.

    ``files`` outside ``data_dir`` are left alone (an exporter file under /var/log may be
    meant for a log shipper's group); nothing else in the directory is touched.

    Raises:
        OSError: the directory cannot be created or a mode changed.
    """
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tightened = [data_dir] if tighten(data_dir) else []
    inside = {path for path in files if path.parent == data_dir}
    tightened += sorted(path for path in inside if tighten(path))
    if tightened:
        logger.warning(
            "tightened the modes of {} in the data directory (group and other bits removed): {}",
            len(tightened),
            ", ".join(p.name if p != data_dir else "." for p in tightened),
        )
