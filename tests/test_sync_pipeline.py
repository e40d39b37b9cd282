"""The initialization's read pipeline: a fetcher task reads pages ahead of the writer.

The element is a connector of the test's own (its pages can be slowed down, made to fail
or held), the store and the alarm manager are real (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.alarms.manager import AlarmManager
from agent.config import SyncSettings
from agent.connectors.base import ChangePage, Connector, ElementInfo, ObjectPage, ObjectRecord
from agent.errors import ElementUnreachable, StoreError
from agent.store.access import StoreAccess
from agent.store.database import Store
from agent.store.elements import Credentials, Element
from agent.store.encryption import KeyRing, StoreKey
from agent.store.models import OBJECTS
from agent.store.objects import Objects
from agent.sync.engine import SyncEngine
from agent.sync.init import PAGES_AHEAD, WRITE_BATCH

PAGE = 10


class PagedElement(Connector):
    """An element whose classes hold ``sizes[cls]`` objects, served ``PAGE`` at a time.

    Args:
        version: written into every object's data (tells two reads apart).
        fail_at: the page (counted from 1 across classes) answered with ElementUnreachable.
        hold_at: the page whose request never answers (until cancelled).
        cancel_at: the page whose request raises CancelledError of its own.
        latency: seconds each page takes.
        after_page: called after each page is answered, with the pages answered so far.
    """

    def __init__(
        self,
        sizes: dict[str, int],
        *,
        version: int = 1,
        fail_at: int | None = None,
        hold_at: int | None = None,
        cancel_at: int | None = None,
        latency: float = 0.0,
        after_page: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__("test://element", None)
        self.sizes = sizes
        self.version = version
        self.fail_at = fail_at
        self.hold_at = hold_at
        self.cancel_at = cancel_at
        self.latency = latency
        self.after_page = after_page
        self.calls = 0
        self.active = 0

    def rows(self, cls: str) -> list[tuple[str, str]]:
        return [(cls, f"{i:06d}") for i in range(self.sizes[cls])]

    async def info(self) -> ElementInfo:
        return ElementInfo(
            "el-1", "call-server", "10.2.1", "epoch-1", tuple(self.sizes), 0, dict(self.sizes)
        )

    async def objects(
        self,
        cls: str,
        *,
        after: str | None = None,
        snapshot: str | None = None,
        limit: int = 1000,
    ) -> ObjectPage:
        self.calls += 1
        self.active += 1
        try:
            if self.calls == self.fail_at:
                raise ElementUnreachable(f"page {self.calls} failed")
            if self.calls == self.cancel_at:
                raise asyncio.CancelledError  # a driver's own cancel scope leaking out
            if self.calls == self.hold_at:
                await asyncio.Event().wait()
            if self.latency:
                await asyncio.sleep(self.latency)
            start = 0 if after is None else int(after) + 1
            end = min(start + limit, self.sizes[cls])
            objects = tuple(
                ObjectRecord(f"{i:06d}", {"n": i, "v": self.version}) for i in range(start, end)
            )
            following = f"{end - 1:06d}" if end < self.sizes[cls] else None
            return ObjectPage("snap-1", objects, following)
        finally:
            self.active -= 1
            if self.after_page is not None:
                self.after_page(self.calls)

    async def changes(self, after: int, *, epoch: str | None, limit: int = 1000) -> ChangePage:
        return ChangePage("epoch-1", (), 0)

    async def apply(
        self, cls: str, key: str, op: str, data: dict[str, Any] | None, *, user: str
    ) -> int:
        raise AssertionError("an initialization applies nothing to the element")


class Harness:
    """A sync engine on the store whose element ``cm1`` is whatever ``element`` is now."""

    def __init__(self, store: Store, manager: AlarmManager) -> None:
        self.store = store
        self.element: Connector | None = None
        ring = KeyRing([StoreKey.generate()], Path("test.key"))
        self.access = StoreAccess(store.engine)
        self.access.elements.add(
            "cm1",
            "call-server",
            "http://127.0.0.1:9",
            "http",
            0,
            Credentials("admin", "pw"),
            ring=ring,
        )
        self.engine = SyncEngine(
            SyncSettings(page_size=PAGE),
            manager,
            self.access,
            ring,
            connector_factory=self._connect,
        )

    def _connect(
        self, element: Element, credentials: Credentials | None, *, timeout: float, retries: int
    ) -> Connector:
        assert self.element is not None
        return self.element

    async def init(self, element: Connector, within: float = 30) -> Any:
        self.element = element
        job_id = await self.engine.request("cm1", "init")
        deadline = time.monotonic() + within
        while True:
            job = await asyncio.to_thread(self.access.jobs.get, job_id)
            assert job is not None
            if job.state in ("done", "failed"):
                return job
            assert time.monotonic() < deadline, f"job {job_id} did not finish in {within}s"
            await asyncio.sleep(0.01)

    def rows(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(class, key) -> (data version, generation) of the hub's copy."""
        with self.store.engine.connect() as conn:
            found = conn.execute(
                select(OBJECTS.c.cls, OBJECTS.c.key, OBJECTS.c.data, OBJECTS.c.generation)
            )
            return {
                (cls, key): (int(data.split('"v": ')[1].rstrip("}")), generation)
                for cls, key, data, generation in found
            }


def fetch_tasks() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks() if t.get_name().startswith("sync-fetch:") and not t.done()
    ]


class Writes:
    """Objects.write_pages as the engine calls it, recording each batch first."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[list[int]] = []
        self.before: Callable[[list[int]], None] = lambda pages: None
        real = Objects.write_pages

        def write_pages(*args: Any, **kwargs: Any) -> int:
            pages = [len(objects) for _, objects in args[2]]
            self.batches.append(pages)
            self.before(pages)
            return real(*args, **kwargs)

        monkeypatch.setattr(Objects, "write_pages", write_pages)

    @property
    def pages(self) -> int:
        return sum(len(b) for b in self.batches)


SIZES = {"user": 35, "station": 25}  # pages: user 1-4, station 5-7


def test_a_failed_page_leaves_what_a_page_at_a_time_read_left(
    store: Store, manager: AlarmManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Writes(monkeypatch)

    async def scenario() -> None:
        harness = Harness(store, manager)
        first = await harness.init(PagedElement(SIZES, version=1))
        assert first.state == "done", first.error
        # A slow store: the fetcher is ahead when page 6 fails, with pages read and not
        # yet written; they are written before the failure is raised.
        writes.before = lambda pages: time.sleep(0.05)
        failing = PagedElement(SIZES, version=2, fail_at=6)
        second = await harness.init(failing)
        assert second.state == "failed"
        assert "page 6 failed" in second.error
        rows = harness.rows()
        expected = dict.fromkeys(failing.rows("user"), (2, second.id))
        expected |= dict.fromkeys(failing.rows("station"), (1, first.id))
        expected |= dict.fromkeys(failing.rows("station")[:PAGE], (2, second.id))
        assert rows == expected
        element = await asyncio.to_thread(harness.access.elements.get, "cm1")
        assert (element.last_init_ok, element.generation) == (False, first.id)
        assert not fetch_tasks()
        await harness.engine.stop()

    asyncio.run(scenario())


def test_a_failed_write_stops_the_fetcher(
    store: Store, manager: AlarmManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Writes(monkeypatch)

    def disk_full(pages: list[int]) -> None:
        time.sleep(0.05)  # long enough for the fetcher to fill what it may
        raise StoreError("disk full")

    writes.before = disk_full

    async def scenario() -> None:
        harness = Harness(store, manager)
        element = PagedElement({"user": 500}, latency=0.001)
        job = await harness.init(element)
        assert job.state == "failed"
        assert "disk full" in job.error
        # The job ends only once its fetcher has: nothing reads on behind its back.
        assert not fetch_tasks()
        assert element.active == 0
        # At most the failed batch, the pages waiting and one in hand (of 50).
        assert writes.pages <= PAGES_AHEAD + 1
        assert element.calls <= writes.pages + PAGES_AHEAD + 1
        assert harness.rows() == {}
        await harness.engine.stop()

    asyncio.run(scenario())


def test_the_fetcher_reads_at_most_pages_ahead_of_the_writes(
    store: Store, manager: AlarmManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Writes(monkeypatch)
    release = threading.Event()
    leads: list[int] = []
    element = PagedElement({"user": 400, "station": 200})

    def overrun(calls: int) -> None:
        # Past any bound (pages the writer took count once its write starts, so up to
        # PAGES_AHEAD + 1 more): no need to wait any longer to know the test fails.
        if calls - writes.pages > 2 * (PAGES_AHEAD + 1):
            release.set()

    element.after_page = overrun

    def slow_store(pages: list[int]) -> None:
        # Read at the start of each write: the writer has taken writes.pages so far.
        leads.append(element.calls - writes.pages)
        if len(writes.batches) == 1:
            # The first write stalls; a bounded fetcher stops PAGES_AHEAD + 1 pages ahead
            # (the queue full and one page in hand), so this waits its full second.
            release.wait(1.0)
            leads.append(element.calls - writes.pages)

    writes.before = slow_store

    async def scenario() -> None:
        harness = Harness(store, manager)
        job = await harness.init(element)
        assert job.state == "done", job.error
        assert len(harness.rows()) == 600
        await harness.engine.stop()

    asyncio.run(scenario())
    assert max(leads) <= PAGES_AHEAD + 1, leads
    assert leads[1] == PAGES_AHEAD + 1, "the stalled write let the fetcher fill the queue"
    # Pages that waited went in one transaction, never more than WRITE_BATCH objects.
    assert max(len(b) for b in writes.batches) > 1, writes.batches
    assert max(sum(b) for b in writes.batches) <= WRITE_BATCH
    assert writes.pages == 60


def test_stopping_the_engine_cancels_a_fetch_in_flight(
    store: Store, manager: AlarmManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Writes(monkeypatch)

    async def scenario() -> None:
        harness = Harness(store, manager)
        element = PagedElement({"user": 100}, hold_at=3)
        harness.element = element
        await harness.engine.request("cm1", "init")
        deadline = time.monotonic() + 10
        while not (element.calls == 3 and element.active == 1 and writes.pages == 2):
            assert time.monotonic() < deadline, "the fetch of page 3 never started"
            await asyncio.sleep(0.01)
        await asyncio.wait_for(harness.engine.stop(), 5)
        assert element.active == 0, "the held page request was cancelled"
        assert not fetch_tasks()

    asyncio.run(scenario())


def test_a_fetcher_dying_without_a_word_fails_the_job(
    store: Store, manager: AlarmManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Writes(monkeypatch)

    async def scenario() -> None:
        harness = Harness(store, manager)
        job = await harness.init(PagedElement({"user": 100}, cancel_at=3), within=10)
        assert job.state == "failed"
        assert "ended without a last item" in job.error
        assert writes.pages == 2, "the pages before it were written"
        assert not fetch_tasks()
        await harness.engine.stop()

    asyncio.run(scenario())


def test_objects_are_stored_as_before(store: Store) -> None:
    """The raw upsert writes what the ORM upsert wrote: sorted-key JSON, the new
    generation on rows it rewrites; the job's progress commits with the batch."""
    ring = KeyRing([StoreKey.generate()], Path("test.key"))
    access = StoreAccess(store.engine)
    element = access.elements.add(
        "cm1", "call-server", "http://127.0.0.1:9", "http", 0, None, ring=ring
    )
    job_id = access.jobs.create(element, "init", "manual", None)
    first = [ObjectRecord("a", {"z": 1, "a": [1, "\u00e9"]}), ObjectRecord("b", {"x": None})]
    assert access.objects.write_pages(element.id, [("user", first)], 7) == 2
    again = [ObjectRecord("a", {"b": 2, "a": 1})]
    written = access.objects.write_pages(
        element.id,
        [("user", again), ("station", [])],
        8,
        job_id=job_id,
        progress={"progress": 3, "total": 9},
    )
    assert written == 1
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(OBJECTS.c.cls, OBJECTS.c.key, OBJECTS.c.data, OBJECTS.c.generation).order_by(
                OBJECTS.c.key
            )
        )
        assert [tuple(r) for r in rows] == [
            ("user", "a", '{"a": 1, "b": 2}', 8),
            ("user", "b", '{"x": null}', 7),
        ]
    assert access.objects.write_pages(element.id, [("user", first[:1])], 9) == 1
    with store.engine.connect() as conn:
        (data,) = conn.execute(select(OBJECTS.c.data).where(OBJECTS.c.key == "a")).one()
    assert data == '{"a": [1, "\\u00e9"], "z": 1}'
    job = access.jobs.get(job_id)
    assert job is not None
    assert job.counts == {
        "progress": 3,
        "total": 9,
    }
