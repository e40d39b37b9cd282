"""Sharing figures against an anchor measured in the same run.

- throughput: N hub changes (station creates posted to ``POST /api/v1/objects`` in
  batches) distributed to E simulated elements: changes/s from the first post until every
  element has applied all of them (nothing pending, no failed distribution);
- drain: one element down while N more hub changes (updates of the same stations) reach
  the others, then up again: seconds until its backlog of N is applied;
- anchor: the same N creates posted straight to E fresh simulators with plain httpx (one
  AsyncClient per simulator, each simulator's updates one after the other as the agent
  sends them, the simulators in parallel); and, for the drain, the same N updates posted
  to one simulator alone.
Target: >= 0.5 x the anchor's changes/s.

    .venv/bin/python bench/sharing.py [--changes 10000] [--elements 5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from ports import free_port
from waits import stop, wait_http, wait_job

from agent.cli.api_types import SharingStatus
from agent.cli.client import Client
from agent.errors import ProvsyncError
from agent.http_tls import client_context

BIN = Path(sys.executable).parent
PASSWORD = "bench-pass"
TOKEN = "bench"
SERVICE_USER = "provsync"
"""The agent's [sync] service_user: the user it writes to elements as."""
SHARING = {"retry_initial": "100ms", "retry_max": "1s"}
"""Short backoff so that the drain is not dominated by the wait before the next try."""
POLL = 0.2
"""Seconds between two looks at GET /api/v1/sharing."""
FIRST_KEY = 30000
"""Station keys of the bench: 30000 up (a simulator with --objects 0 holds station 20000)."""


def simulate(tmp: Path, element_id: str, hub: str = "") -> tuple[subprocess.Popen[bytes], str]:
    """A ``provsync simulate`` process with (almost) no objects; returns it and its URL."""
    port = free_port()
    command = [
        str(BIN / "provsync"),
        "simulate",
        "--port",
        str(port),
        "--objects",
        "0",
        "--element-id",
        element_id,
        "--username",
        "admin",
        "--password-file",
        str(tmp / "pw"),
    ]
    if hub:
        command += ["--hub", hub, "--hub-token-file", str(tmp / "token")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def station(index: int, kind: str) -> dict[str, Any]:
    key = str(FIRST_KEY + index)
    return {"number": key, "type": kind, "port": f"B{index:05d}"}


def changes(count: int, op: str, kind: str) -> list[dict[str, Any]]:
    """Hub changes of the stations; updates carry whole records (what the elements get)."""
    return [
        {"class": "station", "key": str(FIRST_KEY + i), "op": op, "data": station(i, kind)}
        for i in range(count)
    ]


def admin(url: str, method: str, path: str, body: Any = None) -> Any:
    """A call to a simulator (its admin routes ignore the injected faults)."""
    response = httpx.request(
        method,
        f"{url}{path}",
        json=body,
        auth=("admin", PASSWORD),
        timeout=120,
        verify=client_context(),
    )
    if response.status_code >= 300:
        raise SystemExit(
            f"{method} {url}{path} answered {response.status_code}: {response.text[:300]}"
        )
    return response.json()


def wait_sharing(
    api: Client,
    done: Callable[[SharingStatus], bool],
    within: float,
    what: str,
    finished: dict[str, float] | None = None,
    since: float = 0.0,
) -> SharingStatus:
    """Poll GET /api/v1/sharing until ``done``; a failed distribution ends the bench.

    ``finished`` collects, per element, the seconds after ``since`` at which its pending
    count was first seen at 0.
    """
    deadline = time.monotonic() + within
    while True:
        status = api.sharing_status()
        failed = {e["name"]: e["errors"] for e in status["elements"] if e["errors"]}
        if failed:
            raise SystemExit(f"{what}: failed distributions {failed}")
        if finished is not None:
            for element in status["elements"]:
                if element["pending"] == 0 and element["name"] not in finished:
                    finished[element["name"]] = time.perf_counter() - since
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not done in {within:.0f} s; last status {status}")
        time.sleep(POLL)


def pending(status: SharingStatus, names: list[str]) -> int:
    return sum(e["pending"] for e in status["elements"] if e["name"] in names)


def post_changes(api: Client, items: list[dict[str, Any]], batch: int) -> None:
    for offset in range(0, len(items), batch):
        try:
            api.change_objects(items[offset : offset + batch])
        except ProvsyncError as exc:
            raise SystemExit(f"POST /api/v1/objects: {exc}") from None


def check_stations(url: str, items: list[dict[str, Any]]) -> None:
    """The simulator holds every station of ``items`` with the data sent."""
    held = admin(url, "GET", "/admin/objects/station")
    wrong = [c["key"] for c in items if held.get(c["key"]) != c["data"]]
    if wrong:
        raise SystemExit(f"{url}: {len(wrong)} stations missing or different, e.g. {wrong[:3]}")


async def post_direct(urls: list[str], items: list[dict[str, Any]]) -> float:
    """Anchor: ``items`` to every simulator, one after the other each, all in parallel."""

    async def one(url: str) -> None:
        async with httpx.AsyncClient(
            base_url=f"{url}/api/v1", auth=("admin", PASSWORD), timeout=60, verify=client_context()
        ) as client:
            for item in items:
                response = await client.post("/updates", json={**item, "user": SERVICE_USER})
                if response.status_code != 200:
                    raise SystemExit(
                        f"{url}: POST /updates answered {response.status_code}: "
                        f"{response.text[:300]}"
                    )

    start = time.perf_counter()
    await asyncio.gather(*(one(url) for url in urls))
    return time.perf_counter() - start


def setup(api: Client, names: list[str], urls: list[str]) -> None:
    """Add the elements, make them share, one sync to the hub: sharing, nothing pending."""
    for name, url in zip(names, urls, strict=True):
        element = {"name": name, "url": url, "username": "admin", "password": PASSWORD}
        try:
            added = api.add_element({**element, "interval": 0})
        except ProvsyncError as exc:
            raise SystemExit(f"adding {name}: {exc}") from None
        job = wait_job(api, added["job"], within=120)
        if job["state"] == "failed":
            raise SystemExit(f"job {job['id']} failed: {job['error']}")
    for url in urls:
        admin(url, "POST", "/admin/sharing/start")
    admin(urls[0], "POST", "/admin/sharing/sync")
    wait_sharing(
        api,
        lambda s: s["state"] == "sharing" and s["sync_running"] is None and pending(s, names) == 0,
        120,
        "start sharing and sync to the hub",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--elements", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500, help="hub changes per POST")
    args = parser.parse_args()
    count, batch = args.changes, args.batch
    if count < 1 or args.elements < 1 or not 1 <= batch <= 10_000:
        parser.error("--changes and --elements must be >= 1, --batch 1 to 10000")
    within = 120 + count / 20  # fails below 20 changes/s: something is wrong
    creates = changes(count, "create", "9608")
    updates = changes(count, "update", "J179")
    names = [f"e{n}" for n in range(1, args.elements + 1)]
    procs: list[subprocess.Popen[bytes]] = []
    failed = True
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "pw").write_text(PASSWORD)
        (tmp / "token").write_text(TOKEN)
        api_port = free_port()
        hub = f"http://127.0.0.1:{api_port}"
        config = {
            "agent": {"data_dir": str(tmp / "var"), "log_level": "WARNING"},
            "api": {"listen": f"127.0.0.1:{api_port}", "token": TOKEN},
            "snmp": {"enabled": False},
            "exporters": {"file": []},
            "sync": {"incremental_interval": "0s"},
            "sharing": SHARING,
        }
        (tmp / "p.toml").write_text(tomli_w.dumps(config))
        log = tmp / "agent.log"
        try:
            with log.open("wb") as handle:
                agent = subprocess.Popen(
                    [str(BIN / "provsync"), "run", "--config", str(tmp / "p.toml")],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    cwd=tmp,
                )
            procs.append(agent)
            started = [simulate(tmp, n, hub) for n in names]
            procs += [proc for proc, _ in started]
            urls = [url for _, url in started]
            wait_http(f"{hub}/api/v1/health", agent)
            for proc, url in started:
                wait_http(f"{url}/api/v1/health", proc)
            with Client(hub, TOKEN, timeout=120) as api:
                setup(api, names, urls)

                # ---------------------------------------------------------- throughput
                finished: dict[str, float] = {}
                start = time.perf_counter()
                post_changes(api, creates, batch)
                posted = time.perf_counter() - start
                wait_sharing(
                    api, lambda s: pending(s, names) == 0, within, "throughput", finished, start
                )
                ours_seconds = time.perf_counter() - start
                for url in urls:
                    check_stations(url, creates)

                # ---------------------------------------------------------- drain
                down, others = urls[-1], names[:-1]
                admin(down, "POST", "/admin/faults", {"down": True})
                start = time.perf_counter()
                post_changes(api, updates, batch)
                status = wait_sharing(
                    api,
                    lambda s: pending(s, others) == 0,
                    within,
                    "updates to the elements that are up",
                )
                others_seconds = time.perf_counter() - start
                backlog = pending(status, names[-1:])
                admin(down, "POST", "/admin/faults", {"down": False})
                start = time.perf_counter()
                wait_sharing(api, lambda s: pending(s, names) == 0, within, "drain")
                drain_seconds = time.perf_counter() - start
                for url in urls:
                    check_stations(url, updates)
            stop(agent, within=60)
            for proc, _ in started:
                stop(proc, within=60)

            # -------------------------------------------------------------- anchor
            fresh = [simulate(tmp, f"a{n}") for n in range(1, args.elements + 1)]
            procs += [proc for proc, _ in fresh]
            direct = [url for _, url in fresh]
            for proc, url in fresh:
                wait_http(f"{url}/api/v1/health", proc)
            anchor_seconds = asyncio.run(post_direct(direct, creates))
            anchor_drain = asyncio.run(post_direct(direct[-1:], updates))
            for url in direct[:-1]:
                check_stations(url, creates)
            check_stations(direct[-1], updates)
            failed = False
        finally:
            for proc in procs:
                stop(proc, within=60)
            if failed and log.exists():
                print(
                    "agent log (tail):",
                    *log.read_text(errors="replace").splitlines()[-30:],
                    sep="\n",
                    file=sys.stderr,
                )

    ours, anchor = count / ours_seconds, count / anchor_seconds
    ratio = ours / anchor
    ok = ratio >= 0.5
    elements = len(names)
    print(
        f"sharing: {count:,} hub changes to {elements} elements, posted in batches of "
        f"{batch}; [sharing] retry_initial {SHARING['retry_initial']}, retry_max "
        f"{SHARING['retry_max']}, batch_size default"
    )
    print(f"throughput ({count:,} station creates, applied on every element)")
    print(
        f"  ours   : {ours:9,.0f} changes/s ({ours_seconds:.2f} s; posts accepted after "
        f"{posted:.2f} s; elements done between {min(finished.values()):.2f} and "
        f"{max(finished.values()):.2f} s, seen every {POLL} s)"
    )
    print(
        f"  anchor : {anchor:9,.0f} changes/s ({anchor_seconds:.2f} s; plain httpx POST "
        f"/api/v1/updates, one AsyncClient per simulator, {elements} in parallel)"
    )
    print(f"  ratio  : {ratio:9.2f} (target >= 0.5)")
    print(f"drain ({count:,} station updates, {names[-1]} down meanwhile)")
    print(
        f"  the {elements - 1} elements up had them after {others_seconds:.2f} s; "
        f"backlog of {names[-1]}: {backlog:,}"
    )
    print(
        f"  ours   : {drain_seconds:9.2f} s after it came back "
        f"({backlog / drain_seconds:,.0f} changes/s)"
    )
    print(
        f"  anchor : {anchor_drain:9.2f} s (the same updates to one simulator, plain httpx, "
        f"{count / anchor_drain:,.0f} changes/s)"
    )
    print(f"  ratio  : {anchor_drain / drain_seconds:9.2f} (anchor time / ours)")
    print(f"target: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
