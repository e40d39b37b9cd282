"""Synchronization figures against an anchor measured in the same run.

- initialization sync of an element with 100,000 objects: objects/s (median of
  ``--rounds`` first initializations, each right before its anchor) and the agent's peak
  resident memory (VmHWM);
- incremental sync of 1,800 changes: seconds;
- anchor: the same pages fetched with plain httpx and the same rows inserted with
  SQLAlchemy Core executemany into SQLite, one page after the other, measured in the
  same run against the same simulator.
Targets (issue 11): >= 0.8 x the anchor's objects/s, peak RSS < 300 MB, incremental of
1,800 changes < 2 s.

    .venv/bin/python bench/sync.py [--objects 100000] [--changes 1800]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from ports import free_port
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, create_engine
from waits import wait_http, wait_job

from agent.cli.client import Client
from agent.http_tls import client_context

BIN = Path(sys.executable).parent
PASSWORD = "bench-pass"
RATIO_TARGET = 0.8
RSS_TARGET_MB = 300
JOB_WAIT = 3600.0
"""Seconds a sync job may take before the bench gives up on it."""
JOB_POLL = 0.5
"""Seconds between two looks at a job. Its own start and end times are measured, not when
this sees them: a slower poll only takes less of the agent's time from the sync it measures."""


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def anchor(url: str) -> tuple[float, int]:
    """Plain httpx pages + Core executemany, the floor of what an init sync costs."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/anchor.db")
        metadata = MetaData()
        table = Table(
            "objects",
            metadata,
            Column("element_id", Integer),
            Column("cls", String(32)),
            Column("key", String(128)),
            Column("data", Text),
        )
        metadata.create_all(engine)
        total = 0
        start = time.perf_counter()
        with httpx.Client(
            base_url=f"{url}/api/v1", auth=("admin", PASSWORD), verify=client_context()
        ) as http:
            for cls in http.get("/info").json()["classes"]:
                after = None
                while True:
                    params: dict[str, Any] = {"limit": 1000}
                    if after:
                        params["after"] = after
                    page = http.get(f"/objects/{cls}", params=params).json()
                    rows = [
                        {
                            "element_id": 1,
                            "cls": cls,
                            "key": o["key"],
                            "data": json.dumps(o["data"], sort_keys=True),
                        }
                        for o in page["objects"]
                    ]
                    if rows:
                        with engine.begin() as conn:
                            conn.execute(table.insert(), rows)
                    total += len(rows)
                    after = page["next"]
                    if after is None:
                        break
        elapsed = time.perf_counter() - start
        engine.dispose()
        return total / elapsed, total


def job_seconds(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started"])
    ended = datetime.fromisoformat(job["ended"])
    return (ended - started).total_seconds()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=1800)
    parser.add_argument(
        "--rounds", type=int, default=3, help="initializations, each followed by its anchor"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "pw").write_text(PASSWORD)
        sim_port, api_port = free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        simulator = subprocess.Popen(
            [
                str(BIN / "provsync"),
                "simulate",
                "--port",
                str(sim_port),
                "--objects",
                str(args.objects),
                "--password-file",
                str(tmp / "pw"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        config = {
            "agent": {"data_dir": str(tmp / "var"), "log_level": "WARNING"},
            "api": {"listen": f"127.0.0.1:{api_port}", "token": "bench"},
            "snmp": {"enabled": False},
            "exporters": {"file": []},
            "sync": {"escalate_after_changes": max(args.changes + 1, 1800)},
        }
        (tmp / "p.toml").write_text(tomli_w.dumps(config))
        agent = subprocess.Popen(
            [str(BIN / "provsync"), "--config", str(tmp / "p.toml"), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{sim_url}/api/v1/health", simulator, within=300)
            wait_http(f"http://127.0.0.1:{api_port}/api/v1/health", agent, within=300)
            with Client(f"http://127.0.0.1:{api_port}", "bench", timeout=60) as api:
                # Each round: a new element's first initialization (the same element data),
                # then the anchor, so each ratio compares runs a few seconds apart on a
                # shared machine; all before the changes below: the same pages, same rows.
                rounds: list[tuple[float, float, float]] = []
                for index in range(args.rounds):
                    added = api.add_element(
                        {
                            "name": f"big{index}" if index else "big",
                            "url": sim_url,
                            "username": "admin",
                            "password": PASSWORD,
                            "interval": 0,
                        }
                    )
                    init = wait_job(api, added["job"], within=JOB_WAIT, poll=JOB_POLL)
                    objects = sum(init["counts"]["objects"].values())
                    anchor_rate, anchor_objects = anchor(sim_url)
                    rounds.append((objects / job_seconds(init), anchor_rate, job_seconds(init)))
                rss = peak_rss_mb(agent.pid)
                with httpx.Client(
                    base_url=sim_url, auth=("admin", PASSWORD), verify=client_context()
                ) as element:
                    for index in range(args.changes):
                        element.post(
                            "/admin/changes",
                            json={
                                "user": "tech",
                                "op": "create",
                                "class": "station",
                                "key": f"9{index:06d}",
                                "data": {"n": index},
                            },
                        )
                job_id = api.sync("big", "incremental")["job"]
                incremental = wait_job(api, job_id, within=JOB_WAIT, poll=JOB_POLL)
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(60)
            simulator.terminate()
            simulator.wait(30)
    ratio = statistics.median(ours / theirs for ours, theirs, _ in rounds)
    init_rate = statistics.median(ours for ours, _, _ in rounds)
    anchor_rate = statistics.median(theirs for _, theirs, _ in rounds)
    inc_seconds = job_seconds(incremental)
    ratio_ok, rss_ok = ratio >= RATIO_TARGET, rss < RSS_TARGET_MB
    inc_ok = inc_seconds < 2 and incremental["state"] == "done"
    ok = ratio_ok and rss_ok and inc_ok
    print(f"initialization sync, {objects:,} objects, {len(rounds)} rounds (medians)")
    print(f"  ours   : {init_rate:9,.0f} objects/s")
    print(
        f"  anchor : {anchor_rate:9,.0f} objects/s (httpx pages + Core executemany, "
        f"{anchor_objects:,} objects)"
    )
    for ours, theirs, seconds in rounds:
        print(
            f"    round: {ours:9,.0f} vs {theirs:9,.0f} objects/s ({seconds:.1f} s), "
            f"ratio {ours / theirs:.2f}"
        )
    print(f"  ratio  : {ratio:9.2f} (median; target >= {RATIO_TARGET}: {met(ratio_ok)})")
    print(f"  agent peak RSS: {rss:.0f} MB (target < {RSS_TARGET_MB} MB: {met(rss_ok)})")
    applied = incremental["counts"].get("applied")
    print(
        f"incremental sync, {args.changes:,} changes: {inc_seconds:.2f} s (target < 2 s: "
        f"{met(inc_ok)}), {applied} applied, kind {incremental['kind']}"
    )
    print(f"targets: {met(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
