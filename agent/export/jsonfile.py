"""JSON lines to a file with size-based rotation: the format log shippers read.

One notification per line, UTF-8, in sequence order. A crash can leave a partial last
line; on open it is cut back to the last complete line (its entries are after the
committed cursor, so they are written again).

The file's I/O runs on a thread of its own, not on asyncio's shared default executor: a
write that hangs (a stuck network mount) then ties up only that thread, and the close and
reopen of each retry wait behind it there, instead of taking two more shared threads per
retry until every ``asyncio.to_thread`` of the agent queues for ever.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.alarms.ports import ExporterPorts
from agent.alarms.records import Notification
from agent.config import ExporterSettings, FileExporterSettings
from agent.errors import ExportError
from agent.export.base import Exporter


class JsonLinesFile:
    """Writes and rotates the file; the delivery loop is in :class:`FileExporter`."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int, fsync: bool) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self._fd: int | None = None
        # A write the exporter gave up on (deliver_timeout) may still run: a close or
        # reopen waits for it instead of closing its descriptor under it.
        self._lock = threading.RLock()

    def open(self) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            self._repair_tail()

    def _repair_tail(self) -> None:
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with self.path.open("rb") as handle:
            handle.seek(max(0, size - 65536))
            tail = handle.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        keep = size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail))
        os.ftruncate(self._fd, keep)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _rotate(self) -> None:
        self.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self.open()

    def write(self, lines: Sequence[bytes]) -> None:
        with self._lock:
            self._write(lines)

    def _write(self, lines: Sequence[bytes]) -> None:
        if self._fd is None:
            self.open()
        assert self._fd is not None
        chunk: list[bytes] = []
        size = os.fstat(self._fd).st_size
        for line in lines:
            if size > 0 and size + len(line) > self.max_bytes:
                self._flush(chunk)
                chunk = []
                self._rotate()
                size = 0
            chunk.append(line)
            size += len(line)
        self._flush(chunk)

    def _flush(self, chunk: list[bytes]) -> None:
        if not chunk or self._fd is None:
            return
        data = b"".join(chunk)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(self._fd)


def encode(notification: Notification, host: str) -> bytes:
    data = notification.to_json()
    data["host"] = host
    return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class FileExporter(Exporter):
    def __init__(
        self,
        ports: ExporterPorts,
        settings: ExporterSettings,
        target: FileExporterSettings,
        path: Path,
        host: str,
    ) -> None:
        super().__init__(target.target_name, ports, settings, min_severity=target.min_severity)
        self.host = host
        self.writer = JsonLinesFile(
            path, max_bytes=target.max_bytes, backups=target.backups, fsync=target.fsync
        )
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-file")

    async def open(self) -> None:
        try:
            await self._in_file_thread(self.writer.open)
        except OSError as exc:
            raise ExportError(f"cannot open {self.writer.path}: {exc.strerror}") from exc

    async def close(self) -> None:
        await self._in_file_thread(self.writer.close)

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        lines = [encode(n, self.host) for n in notifications]
        try:
            await self._in_file_thread(lambda: self.writer.write(lines))
        except OSError as exc:
            raise ExportError(f"cannot write {self.writer.path}: {exc.strerror}") from exc

    async def stop(self, drain_seconds: float) -> None:
        await super().stop(drain_seconds)
        # A write still stuck keeps its thread; queued steps are dropped.
        self._io.shutdown(wait=False, cancel_futures=True)

    async def _in_file_thread(self, step: Callable[[], None]) -> None:
        """``step`` on this target's own thread: one at a time, in order; a step given up
        on (timeout) while still queued is dropped, so retries do not pile up behind a
        stuck write."""
        await asyncio.get_running_loop().run_in_executor(self._io, step)
