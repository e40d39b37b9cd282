"""Private files: the data directory 0700 and everything the agent keeps in it 0600.

The agent runs with umask 077 (:func:`private_umask`), so every file and directory it or a
library creates is private whatever the operator's umask. What an older release or a
wide umask left behind is tightened on start, with one warning naming it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
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


def tighten(path: Path, wanted: int) -> bool:
    """Remove group and other bits from ``path`` (not following links); True if it had any."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
        return False
    path.chmod(wanted)
    return True


def secure_data_dir(data_dir: Path) -> None:
    """Make the data directory 0700 and every file under it 0600.

    Raises:
        OSError: the directory cannot be created or its modes changed.
    """
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tightened = [data_dir] if tighten(data_dir, DIR_MODE) else []
    for root, dirs, files in os.walk(data_dir):
        base = Path(root)
        tightened += [base / d for d in dirs if tighten(base / d, DIR_MODE)]
        tightened += [base / f for f in files if tighten(base / f, FILE_MODE)]
    if tightened:
        logger.warning(
            "tightened the modes of {} in the data directory (0700 directories, 0600 files): {}",
            len(tightened),
            ", ".join(str(p.relative_to(data_dir)) if p != data_dir else "." for p in tightened),
        )
