"""Committed alarm transitions per second, on SQLite and PostgreSQL, against an anchor.

Prints, per store:
  - sustained throughput: raise+clear transitions through the alarm manager, with many
    requests in flight (each acknowledged only after its commit);
  - the anchor, measured in the same run: the same number of rows inserted into a table
    of the same shape with plain SQLAlchemy Core ``executemany`` in commits of the same size;
  - latency: p50 / p99 commit latency with 1,000 transitions/s offered (open loop).
Targets (issue 2): >= 5,000 transitions/s on SQLite; p99 < 50 ms at 1,000/s offered.

    .venv/bin/python bench/alarms.py [--transitions N] [--pg URL | --no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.store.database import Store, create_store_engine, normalize_url
from agent.store.models import UTCDateTime

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
IN_FLIGHT = 512


async def throughput(manager: AlarmManager, transitions: int) -> float:
    """IN_FLIGHT callers, each raising then clearing its share of transitions/2 alarms."""
    alarms = transitions // 2

    async def caller(first: int) -> None:
        for index in range(first, alarms, IN_FLIGHT):
            await manager.raise_alarm("sync-failed", f"bench-{index}")
            await manager.clear(type_id="sync-failed", resource=f"bench-{index}")

    start = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(IN_FLIGHT)))
    return (2 * alarms) / (time.perf_counter() - start)


async def latency(manager: AlarmManager, rate: int, seconds: float) -> tuple[float, float, int]:
    """Open loop: submit at ``rate``/s regardless of answers; latency to commit."""
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(index: int) -> None:
        begin = time.perf_counter()
        if index % 2 == 0:
            await manager.raise_alarm("element-unreachable", f"lat-{index // 2}")
        else:
            await manager.clear(type_id="element-unreachable", resource=f"lat-{index // 2}")
        latencies.append(time.perf_counter() - begin)

    total = int(rate * seconds)
    start = time.perf_counter()
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return p50, p99, total


def anchor(url: str, rows: int, batch: int) -> float:
    """Plain Core executemany of the same number of log-shaped rows, same commit size."""
    engine = create_store_engine(url) if url.startswith("sqlite") else create_engine(url)
    metadata = MetaData()
    table = Table(
        f"anchor_{uuid.uuid4().hex[:8]}",
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("at", UTCDateTime),
        Column("kind", String(32)),
        Column("alarm_id", BigInteger),
        Column("type_id", String(64)),
        Column("resource", String(255)),
        Column("qualifier", String(255)),
        Column("severity", String(16)),
        Column("text", Text),
        Column("raise_seq", BigInteger),
        Column("payload", Text),
    )
    metadata.create_all(engine)
    now = datetime.now(UTC)
    data = [
        {
            "seq": i,
            "at": now,
            "kind": "alarm-raised",
            "alarm_id": i,
            "type_id": "sync-failed",
            "resource": f"anchor-{i}",
            "qualifier": "",
            "severity": "major",
            "text": "Synchronization Failed",
            "raise_seq": 0,
            "payload": "{}",
        }
        for i in range(1, rows + 1)
    ]
    start = time.perf_counter()
    for offset in range(0, rows, batch):
        with engine.begin() as conn:
            conn.execute(table.insert(), data[offset : offset + batch])
    rate = rows / (time.perf_counter() - start)
    metadata.drop_all(engine)
    engine.dispose()
    return rate


def bench_store(label: str, url: str, transitions: int, latency_seconds: float) -> bool:
    store = Store(url)
    store.open()
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    try:
        asyncio.run(throughput(manager, 2000))  # warm-up: caches, pool, statement cache
        ours = asyncio.run(throughput(manager, transitions))
        p50, p99, offered = asyncio.run(latency(manager, 1000, latency_seconds))
    finally:
        manager.stop()
        store.close()
    base = anchor(normalize_url(url), transitions, 512)
    print(f"[{label}]")
    print(f"  alarm transitions committed : {ours:10,.0f} /s  ({transitions:,} transitions)")
    print(f"  anchor Core executemany     : {base:10,.0f} rows/s (same count, 512 per commit)")
    print(f"  ratio ours / anchor         : {ours / base:10.2f}")
    print(f"  at 1,000/s offered ({offered:,}) : p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    if label == "sqlite":
        ok = ours >= 5000 and p99 < 50
        print(f"  target >= 5,000/s and p99 < 50 ms: {'met' if ok else 'NOT met'}")
        return ok
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--pg", default=PG_ADMIN, help="admin URL of a PostgreSQL server")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    from loguru import logger

    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        ok = bench_store(
            "sqlite", f"sqlite:///{tmp}/bench.db", args.transitions, args.latency_seconds
        )
    if not args.no_pg:
        name = f"provsync_bench_{uuid.uuid4().hex[:8]}"
        try:
            with psycopg.connect(args.pg, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            print(f"[postgresql] skipped: no server at {args.pg} ({exc})")
            return 0 if ok else 1
        try:
            url = args.pg.rsplit("/", 1)[0] + "/" + name
            bench_store("postgresql", url, args.transitions, args.latency_seconds)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
