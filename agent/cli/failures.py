"""Failures the CLI reports in one line: OS errors, unusable paths, library messages.

The exit status tells the operator whom to blame: 2 when the path or value they gave
cannot work (missing, a file where a directory is needed, read-only), 1 when the machine
failed at run time (disk full, I/O error).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

# The path given is wrong: bad usage (exit 2). Anything else is a runtime failure (exit 1).
_USAGE_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EINVAL,
    }
)


def exit_code(exc: OSError) -> int:
    return 2 if exc.errno in _USAGE_ERRNOS else 1


def reason(exc: OSError) -> str:
    """``No space left on device`` rather than ``[Errno 28] No space left on device: 'x'``."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text}: {exc.filename}" if exc.filename else text


def one_line(message: str) -> str:
    """Library messages folded into one line, without SQLAlchemy's trailing link."""
    lines = [
        line.strip()
        for line in message.splitlines()
        if line.strip() and not line.lstrip().startswith("(Background on this error at:")
    ]
    return "; ".join(lines)


def nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def blocking_file(path: Path) -> Path | None:
    """The file (not directory) that stands where ``path`` or one of its parents should be."""
    existing = nearest_existing(path)
    return None if existing.is_dir() else existing


def prepare_directory(path: Path, mode: int = 0o700) -> str | None:
    """Create ``path`` if missing (``mode``; parents as the umask says) and check it is a
    writable directory. Returns why it cannot be used, None when it can."""
    if (blocker := blocking_file(path)) is not None:
        return f"{blocker} is not a directory"
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create it: {exc.strerror or exc}"
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable by this user"
    return None


def usage_line(message: str, command_path: str | None) -> str:
    """A usage error as one line that says where the full usage is."""
    where = f" (see '{command_path} --help')" if command_path else ""
    return one_line(message) + where
