"""The exporter interface through its JSON-lines file exporter."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.cursors import load_cursor
from agent.alarms.manager import AlarmManager
from agent.config import ExporterSettings, FileExporterSettings
from agent.export.jsonfile import FileExporter, JsonLinesFile
from agent.store.database import Store
from tests.waiting import until

FAST = ExporterSettings(
    poll_interval=0.05, retry_initial=0.05, retry_max=0.2, batch_size=50, backlog_threshold=1000
)
TIGHT = FAST.model_copy(update={"backlog_threshold": 20})


def read_lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def with_exporter(
    store: Store,
    path: Path,
    body: Callable[[AlarmManager, FileExporter], Awaitable[None]],
    *,
    target: FileExporterSettings | None = None,
    settings: ExporterSettings = FAST,
) -> None:
    async def main() -> None:
        manager = AlarmManager(store.engine, Catalog())
        manager.start()
        exporter = FileExporter(
            manager, settings, target or FileExporterSettings(path=path, name="t"), path, "h1"
        )
        await exporter.start()
        try:
            await body(manager, exporter)
        finally:
            await exporter.stop(10)
            manager.stop()

    asyncio.run(main())


def test_lines_are_consecutive_and_complete(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"

    async def body(manager: AlarmManager, exporter: FileExporter) -> None:
        for i in range(120):
            await manager.raise_alarm("sync-failed", f"cm{i}")
        await manager.emit_event("test", "agent")
        await until(lambda: exporter.cursor == manager.last_seq)

    with_exporter(store, path, body)
    lines = read_lines(path)
    assert [line["seq"] for line in lines] == list(range(1, 122))
    assert lines[0]["kind"] == "alarm-raised"
    assert lines[0]["host"] == "h1"
    assert lines[0]["type_name"] == "Synchronization Failed"
    assert lines[-1]["type"] == "test"
    assert load_cursor(store.engine, "t") == 121


def test_resumes_from_cursor_without_repeats(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"

    async def first(manager: AlarmManager, exporter: FileExporter) -> None:
        for i in range(30):
            await manager.raise_alarm("sync-failed", f"a{i}")
        await until(lambda: exporter.cursor == manager.last_seq)

    with_exporter(store, path, first)

    # While the exporter is away, more is committed; it picks up from its cursor.
    async def offline() -> None:
        manager = AlarmManager(store.engine, Catalog())
        manager.start()
        for i in range(25):
            await manager.emit_event("heartbeat", f"b{i}")
        manager.stop()

    asyncio.run(offline())

    async def second(manager: AlarmManager, exporter: FileExporter) -> None:
        await until(lambda: exporter.cursor == manager.last_seq)

    with_exporter(store, path, second)
    assert [line["seq"] for line in read_lines(path)] == list(range(1, 56))


def test_severity_filter_passes_clears(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    target = FileExporterSettings(path=path, name="t", min_severity="major")

    async def body(manager: AlarmManager, exporter: FileExporter) -> None:
        minor = await manager.raise_alarm("sync-required", "g1")
        major = await manager.raise_alarm("sync-failed", "cm1")
        await manager.clear(major.alarm["id"])
        await manager.clear(minor.alarm["id"])
        await until(lambda: exporter.cursor == manager.last_seq)

    with_exporter(store, path, body, target=target)
    kinds = [(line["type"], line["kind"]) for line in read_lines(path)]
    assert ("sync-required", "alarm-raised") not in kinds
    assert ("sync-failed", "alarm-raised") in kinds
    assert ("sync-failed", "alarm-cleared") in kinds


def test_rotation_by_size(tmp_path: Path) -> None:
    path = tmp_path / "rot.jsonl"
    writer = JsonLinesFile(path, max_bytes=1000, backups=2, fsync=False)
    writer.open()
    line = b"x" * 99 + b"\n"
    for _ in range(5):
        writer.write([line] * 10)  # 1000 bytes each round
    writer.close()
    assert path.stat().st_size == 1000
    assert (tmp_path / "rot.jsonl.1").stat().st_size == 1000
    assert (tmp_path / "rot.jsonl.2").exists()
    assert not (tmp_path / "rot.jsonl.3").exists()


def test_partial_last_line_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_bytes(b'{"seq":1}\n{"seq":2}\n{"se')
    writer = JsonLinesFile(path, max_bytes=10_000, backups=1, fsync=False)
    writer.open()
    writer.write([b'{"seq":3}\n'])
    writer.close()
    assert path.read_bytes() == b'{"seq":1}\n{"seq":2}\n{"seq":3}\n'


def test_dead_target_backlog_alarm_then_recovery(store: Store, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    path = blocked / "out.jsonl"
    path.mkdir()  # a directory where the file should be: every open fails

    async def body(manager: AlarmManager, exporter: FileExporter) -> None:
        for i in range(40):
            await manager.raise_alarm("sync-failed", f"cm{i}")
        await until(lambda: bool(queries.list_alarms(manager.engine, type_id="exporter-backlog")))
        # The manager kept committing while the target was dead.
        assert manager.last_seq >= 41
        assert exporter.failures > 0
        assert exporter.last_error
        assert "cannot open" in exporter.last_error
        path.rmdir()
        await until(lambda: not queries.list_alarms(manager.engine, type_id="exporter-backlog"))
        await until(lambda: exporter.cursor == manager.last_seq)

    with_exporter(store, path, body, settings=TIGHT)
    lines = read_lines(path)
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    kinds = {(line["type"], line["kind"]) for line in lines}
    assert ("exporter-backlog", "alarm-raised") in kinds
    assert ("exporter-backlog", "alarm-cleared") in kinds


class StuckFile(JsonLinesFile):
    """A file whose writes hang (a stuck NFS mount, a full pipe) until ``release`` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, max_bytes=10**6, backups=1, fsync=False)
        self.release = threading.Event()
        self.stuck_writes = 0

    def write(self, lines: Sequence[bytes]) -> None:
        if not self.release.is_set():
            self.stuck_writes += 1
            self.release.wait()
        super().write(lines)


def test_a_stuck_write_does_not_starve_the_agents_threads(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "stuck.jsonl"
    settings = FAST.model_copy(update={"deliver_timeout": 0.1, "retry_max": 0.1})

    async def main() -> None:
        # A small shared executor, as on a 2-core host (min(32, cpus + 4) threads): each
        # retry round of a stuck file used to tie up two more of its threads for good.
        loop = asyncio.get_running_loop()
        shared = ThreadPoolExecutor(max_workers=4)
        loop.set_default_executor(shared)
        manager = AlarmManager(store.engine, Catalog())
        manager.start()
        exporter = FileExporter(
            manager, settings, FileExporterSettings(path=path, name="t"), path, "h1"
        )
        stuck = StuckFile(path)
        exporter.writer = stuck
        await exporter.start()
        try:
            for index in range(5):
                await manager.emit_event("test", "load", text=f"n{index}")
            for rounds in range(1, 7):
                await until(lambda r=rounds: exporter.failures >= r, within=5)  # type: ignore[misc]
                # Anything else of the agent's that runs in a thread still does (it waited
                # for ever before: the stuck file I/O held every thread of the pool).
                assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 5.0) == 42
            assert stuck.stuck_writes >= 1
            stuck.release.set()
            await until(lambda: exporter.cursor == manager.last_seq)
        finally:
            stuck.release.set()
            await exporter.stop(10)
            manager.stop()
            shared.shutdown(wait=False)

    asyncio.run(main())
    seqs = {line["seq"] for line in read_lines(path)}
    assert seqs == set(range(1, 6))
