"""The whole agent through its control API, against the bare web stack, in one run.

A real agent (``provsync run``, SQLite in a temporary directory, the default JSON lines
file exporter, one syslog collector over TCP and one SNMP v2c trap target, both receivers
started here) is driven over HTTP/1.1 keep-alive by the client of bench/http_client.py;
the anchor is bench/api_anchor.py (FastAPI + the agent's body models + a bearer check,
served by uvicorn the way the agent serves its API) with the same client. Anchor and agent
run alternately, ``--rounds`` times, to show the spread on a shared machine.

(1) raises/s with 1 and 4 clients (closed loop, a new alarm each), then acks, clears by
    id and clears by key of those alarms with 4 clients: answered/s, and end to end (from
    the first request until every target has the last notification);
(2) latency p50/p99 at 1,000 raises/s offered (open loop, from each request's scheduled
    time: no coordinated omission), agent and anchor;
(3) commit to delivery at each target, p50/p99, for the requests of (2): from the answer
    at the client (the commit is before it) to the notification's arrival, matched by its
    sequence number; and whether every target got every notification, in order, once;
(4) ``POST /api/v1/alarms/batch``, transitions/s until every target has them all.

Targets (issue 11): raises/s, 4 clients, end to end >= 0.8 x the anchor and >= 1,500/s;
p99 at 1,000/s offered < 20 ms; batch >= 10,000 transitions/s end to end; commit to
delivery p99 at 1,000/s < 100 ms at each target.

Placement: the client runs in this process (uvloop when installed), the agent, the
targets (bench/api_targets.py) and the anchor each in their own process; none is pinned
to a core (the machine is shared: pinning would only move the contention).

    .venv/bin/python bench/api.py [--requests 10000] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import tomli_w
from api_anchor import agent_stack
from http_client import Run, closed_loop, open_loop, percentile, request_bytes, run_loop
from ports import HOST, free_port
from waits import stop

from agent.cli.client import Client
from agent.http_tls import client_context

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TOKEN = "bench-token"
TYPE = "element-unreachable"
TARGETS = ("file", "syslog", "trap")
WAIT = 180.0
"""Longest wait for a process to come up or a notification to reach every target."""
STALL = 15.0
"""A target without it that receives nothing for this long is reported as not delivering."""


def wait_health(port: int, proc: subprocess.Popen[bytes], what: str, stderr: Path) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if (
                httpx.get(
                    f"http://{HOST}:{port}/api/v1/health", timeout=2, verify=client_context()
                ).status_code
                == 200
            ):
                return
        except httpx.TransportError:
            time.sleep(0.05)
    stop(proc)
    tail = stderr.read_text(errors="replace").splitlines()[-30:] if stderr.exists() else []
    raise SystemExit(
        f"{what} did not start (exit {proc.returncode}); its stderr ends:\n" + "\n".join(tail)
    )


def _readline(proc: subprocess.Popen[str], within: float) -> str:
    """A line of ``proc``'s stdout, or SystemExit after ``within`` seconds."""
    assert proc.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(within)
    if not result or not result[0]:
        stop(proc)
        raise SystemExit(f"{proc.args!r} did not answer within {within:.0f} s")
    return result[0].strip()


class Targets:
    """The export targets' process (bench/api_targets.py) and its commands."""

    def __init__(self, jsonl: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "api_targets.py"), str(jsonl)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = _readline(self.proc, 30).split()
        if ready[:1] != ["ready"]:
            stop(self.proc)
            raise SystemExit(f"targets did not start: {ready}")
        self.syslog_port, self.trap_port = int(ready[1]), int(ready[2])

    def _command(self, line: str, within: float) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return _readline(self.proc, within + 30)

    def wait(self, seq: int, within: float = WAIT) -> dict[str, float]:
        """When each target first had notification ``seq`` (NaN: not within ``within``)."""
        answer = self._command(f"wait {seq} {within} {STALL}", within).split()
        return dict(zip(TARGETS, (float(v) for v in answer[1:]), strict=True))

    def dump(self, path: Path) -> dict[str, Any]:
        self._command(f"dump {path}", 60)
        document: dict[str, Any] = json.loads(path.read_text())
        return document

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- requests ----------------------------------------------------------------------------


def raises(prefix: str, count: int) -> list[bytes]:
    return [
        request_bytes(
            "POST",
            "/api/v1/alarms",
            HOST,
            TOKEN,
            json.dumps(
                {
                    "type": TYPE,
                    "resource": f"{prefix}-{i:06d}",
                    "severity": "major",
                    "text": "no answer from the call server",
                    "by": "bench",
                }
            ).encode(),
        )
        for i in range(count)
    ]


def by_id(action: str, ids: Sequence[int]) -> list[bytes]:
    body = b'{"by":"bench"}'
    return [request_bytes("POST", f"/api/v1/alarms/{i}/{action}", HOST, TOKEN, body) for i in ids]


def clears_by_key(prefix: str, count: int) -> list[bytes]:
    return [
        request_bytes(
            "POST",
            "/api/v1/alarms/clear",
            HOST,
            TOKEN,
            json.dumps({"type": TYPE, "resource": f"{prefix}-{i:06d}", "by": "bench"}).encode(),
        )
        for i in range(count)
    ]


def batch(prefix: str, count: int, size: int) -> list[bytes]:
    requests = []
    for first in range(0, count, size):
        operations = [
            {
                "op": "raise",
                "type": TYPE,
                "resource": f"{prefix}-{i:07d}",
                "severity": "major",
                "text": "no answer from the call server",
            }
            for i in range(first, min(count, first + size))
        ]
        body = json.dumps({"operations": operations}).encode()
        requests.append(request_bytes("POST", "/api/v1/alarms/batch", HOST, TOKEN, body))
    return requests


# -- figures -----------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured phase: answered/s, and end to end when there is a delivery."""

    count: int
    answered: float
    end_to_end: float = math.nan
    failures: dict[int, int] = field(default_factory=dict)
    p50: float = math.nan
    p99: float = math.nan
    note: str = ""


@dataclass
class Round:
    anchor: dict[str, Phase] = field(default_factory=dict)
    agent: dict[str, Phase] = field(default_factory=dict)
    delivery: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Target -> commit-to-delivery (p50, p99) in seconds, for the open-loop raises."""
    checks: dict[str, str] = field(default_factory=dict)
    """Target -> "ok" or what is wrong with what it received."""


def phase(run: Run, latencies: bool = False) -> Phase:
    result = Phase(count=run.count, answered=run.rate, failures=run.failures())
    if latencies:
        values = run.latencies()
        result.p50, result.p99 = percentile(values, 0.50), percentile(values, 0.99)
    return result


def answers(run: Run) -> list[dict[str, Any]]:
    """The decoded 200 answers (off the clock)."""
    return [json.loads(b) for s, b in zip(run.status, run.body, strict=True) if s == 200]


def last_seq(found: list[dict[str, Any]]) -> int:
    return max((a["seq"] for a in found if a.get("seq")), default=0)


def delivered(targets: Targets, run: Run, seq: int, result: Phase, count: int) -> None:
    """End to end: ``count`` transitions from the run's start until every target has ``seq``."""
    if not seq:
        result.note = "no notification"
        return
    arrived = targets.wait(seq)
    if any(math.isnan(v) for v in arrived.values()):
        late = [name for name, v in arrived.items() if math.isnan(v)]
        result.note = f"notification {seq} not delivered to {', '.join(late)}"
        return
    result.end_to_end = count / (max(arrived.values()) - run.started)


def check_targets(dump: dict[str, Any], last: int) -> dict[str, str]:
    """Every notification 1..last at every target, in order, once."""
    verdicts = {}
    for name in TARGETS:
        seqs = [s for s, _ in dump[name]]
        problems = []
        if seqs != list(range(1, last + 1)):
            unique = set(seqs)
            missing = last - len(unique & set(range(1, last + 1)))
            duplicates = len(seqs) - len(unique)
            disorder = sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
            problems.append(
                f"{missing} missing, {duplicates} duplicated, "
                f"{disorder} out of order (of 1..{last}, {len(seqs)} received)"
            )
        if dump["unidentified"][name]:
            problems.append(f"{dump['unidentified'][name]} without a sequence number")
        verdicts[name] = "; ".join(problems) or f"ok: 1..{last} in order, once"
    return verdicts


def commit_to_delivery(run: Run, dump: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Per target: p50, p99 of arrival minus the answer's arrival at the client."""
    committed = {}
    for status, body, done in zip(run.status, run.body, run.done, strict=True):
        if status == 200:
            seq = json.loads(body).get("seq")
            if seq:
                committed[seq] = done
    result = {}
    for name in TARGETS:
        first: dict[int, float] = {}
        for seq, at in dump[name]:
            first.setdefault(seq, at)
        deltas = [first[s] - t for s, t in committed.items() if s in first]
        result[name] = (percentile(deltas, 0.50), percentile(deltas, 0.99))
    return result


# -- the two servers ---------------------------------------------------------------------


@dataclass
class Sizes:
    requests: int
    rate: float
    open_seconds: float
    open_connections: int
    batch_ops: int
    batch_size: int
    batch_clients: int


def client_ceiling(sizes: Sizes) -> dict[str, float]:
    """The client against a null server (canned answers): what it can do at most."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "http_client.py"), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(_readline(proc, 30))
        requests = raises("ceiling", sizes.requests)
        return {
            f"{clients} client{'s' if clients > 1 else ''}": run_loop(
                closed_loop(HOST, port, requests, clients)
            ).rate
            for clients in (1, 4)
        }
    finally:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.close()
        stop(proc)
        proc.stdout.close()


def all_answered(run: Run) -> Run:
    """``run``, whose every request the anchor answered 200: else it measured nothing."""
    for status, body in zip(run.status, run.body, strict=True):
        if status != 200:
            raise SystemExit(f"the anchor answered {status}: {body[:300]!r}")
    return run


def anchor_round(tmp: Path, sizes: Sizes, http: str, loop: str) -> dict[str, Phase]:
    port = free_port()
    stderr = tmp / "anchor.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "api_anchor.py"),
                "--port",
                str(port),
                "--token",
                TOKEN,
                "--http",
                http,
                "--loop",
                loop,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_health(port, proc, "the anchor", stderr)
        n = sizes.requests
        result = {}

        def closed(name: str, requests: list[bytes], clients: int) -> None:
            result[name] = phase(all_answered(run_loop(closed_loop(HOST, port, requests, clients))))

        all_answered(run_loop(closed_loop(HOST, port, raises("warm", 500), 4)))
        closed("raises, 1 client", raises("one", n), 1)
        closed("raises, 4 clients", raises("four", n), 4)
        ids = list(range(1, n + 1))
        closed("acks, 4 clients", by_id("ack", ids), 4)
        closed("clears by id, 4 clients", by_id("clear", ids), 4)
        closed("clears by key, 4 clients", clears_by_key("one", n), 4)
        offered = raises("open", int(sizes.rate * sizes.open_seconds))
        run = run_loop(open_loop(HOST, port, offered, sizes.rate, sizes.open_connections))
        result["open loop"] = phase(all_answered(run), latencies=True)
        return result
    finally:
        stop(proc)


def agent_config(tmp: Path, targets: Targets, api_port: int) -> Path:
    config = {
        "agent": {"data_dir": str(tmp / "var"), "log_level": "WARNING"},
        "api": {"listen": f"{HOST}:{api_port}", "token": TOKEN},
        # The default exporter of etc/provsync.toml (a config without [[exporters.file]]
        # has none): JSON lines, fsync after each batch.
        "exporters": {"file": [{"path": "notifications.jsonl", "name": "jsonl"}]},
        "snmp": {
            "listen": [f"{HOST}:{free_port(socket.SOCK_DGRAM)}"],
            "communities": [{"name": "public"}],
            # No heartbeats: they carry no notification of the log to match.
            "heartbeat_interval": "0s",
            "targets": [
                {
                    "name": "trap",
                    "address": f"{HOST}:{targets.trap_port}",
                    "version": "v2c",
                    "kind": "trap",
                    "community": "public",
                }
            ],
        },
        "syslog": {
            "collectors": [
                {"name": "syslog", "transport": "tcp", "address": f"{HOST}:{targets.syslog_port}"}
            ],
        },
    }
    path = tmp / "provsync.toml"
    path.write_text(tomli_w.dumps(config))
    return path


def agent_round(tmp: Path, sizes: Sizes, outcome: Round) -> None:
    targets = Targets(tmp / "var" / "notifications.jsonl")
    api_port = free_port()
    config = agent_config(tmp, targets, api_port)
    stderr = tmp / "agent.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [str(BIN / "provsync"), "--config", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_health(api_port, proc, "the agent", stderr)
        n = sizes.requests
        result = outcome.agent

        def closed(name: str, requests: list[bytes], clients: int) -> list[dict[str, Any]]:
            run = run_loop(closed_loop(HOST, port=api_port, requests=requests, clients=clients))
            found = answers(run)
            result[name] = phase(run)
            delivered(targets, run, last_seq(found), result[name], len(found))
            return found

        warm = closed("warm-up", raises("warm", 500), 4)
        del result["warm-up"]
        if not warm:
            raise SystemExit("the agent answered no raise of the warm-up")
        closed("raises, 1 client", raises("one", n), 1)
        four = closed("raises, 4 clients", raises("four", n), 4)
        ids = [a["alarm"]["id"] for a in four]
        closed("acks, 4 clients", by_id("ack", ids), 4)
        closed("clears by id, 4 clients", by_id("clear", ids), 4)
        closed("clears by key, 4 clients", clears_by_key("one", n), 4)

        offered = raises("open", int(sizes.rate * sizes.open_seconds))
        open_run = run_loop(open_loop(HOST, api_port, offered, sizes.rate, sizes.open_connections))
        result["open loop"] = phase(open_run, latencies=True)
        delivered(
            targets, open_run, last_seq(answers(open_run)), result["open loop"], open_run.count
        )

        probe = run_loop(closed_loop(HOST, api_port, batch("probe", 1, 1), 1))
        if probe.status[0] == 404:
            result["batch"] = Phase(0, math.nan, note="batch route: not available (404)")
        elif probe.status[0] != 200:
            note = f"batch route: answered {probe.status[0]} {probe.body[0][:200]!r}"
            result["batch"] = Phase(0, math.nan, note=note)
        else:
            requests = batch("batch", sizes.batch_ops, sizes.batch_size)
            run = run_loop(
                closed_loop(HOST, api_port, requests, sizes.batch_clients, retry_503=0.05)
            )
            results = [r for a in answers(run) for r in a.get("results", [])]
            ok = [r for r in results if r.get("ok")]
            result["batch"] = Phase(
                len(ok), len(ok) / (run.ended - run.started), failures=run.failures()
            )
            notes = [f"{run.retries} requests retried after a 503"] if run.retries else []
            if len(ok) < sizes.batch_ops:
                refused: dict[int, int] = {}
                for item in results:
                    if not item.get("ok"):
                        refused[item.get("status", 0)] = refused.get(item.get("status", 0), 0) + 1
                notes.append(
                    f"{sizes.batch_ops - len(ok)} operations not applied "
                    f"(by status: {refused}, whole requests: {run.failures()})"
                )
            result["batch"].note = "; ".join(notes)
            delivered(targets, run, last_seq(ok), result["batch"], len(ok))

        with Client(f"http://{HOST}:{api_port}", TOKEN) as api:
            last = api.status()["last_seq"]
        targets.wait(last)
        dump = targets.dump(tmp / "arrivals.json")
        outcome.delivery = commit_to_delivery(open_run, dump)
        outcome.checks = check_targets(dump, last)
    finally:
        stop(proc)
        targets.close()
    if proc.returncode not in (0, -signal.SIGTERM):
        tail = stderr.read_text(errors="replace").splitlines()[-10:]
        print(f"  (agent exited {proc.returncode}; stderr ends: {tail})")


# -- report ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def rate(value: float) -> str:
    return "      -" if math.isnan(value) else f"{value:7,.0f}"


def ms(value: float) -> str:
    return "    -" if math.isnan(value) else f"{value * 1000:5.1f}"


def print_round(number: int, outcome: Round) -> None:
    print(f"round {number}: answered/s, end to end/s (until every target has it), anchor/s")
    for name, mine in outcome.agent.items():
        if name in ("open loop", "batch"):
            continue
        theirs = outcome.anchor.get(name)
        base = theirs.answered if theirs else math.nan
        extra = f"  failures {mine.failures}" if mine.failures else ""
        extra += f"  {mine.note}" if mine.note else ""
        print(
            f"  {name:26s} agent {rate(mine.answered)} /s  e2e {rate(mine.end_to_end)} /s"
            f"   anchor {rate(base)} /s   e2e/anchor {mine.end_to_end / base:5.2f}{extra}"
        )
    mine, theirs = outcome.agent["open loop"], outcome.anchor["open loop"]
    print(
        f"  open loop {mine.count:,} raises offered at {SIZES.rate:,.0f}/s: agent p50 "
        f"{ms(mine.p50)} ms p99 {ms(mine.p99)} ms (answered {mine.answered:,.0f}/s"
        f"{', failures ' + str(mine.failures) if mine.failures else ''});"
        f" anchor p50 {ms(theirs.p50)} ms p99 {ms(theirs.p99)} ms"
    )
    print("  commit (answer at the client) to delivery, the open-loop raises:")
    for name, (p50, p99) in outcome.delivery.items():
        print(f"    {name:7s} p50 {ms(p50)} ms  p99 {ms(p99)} ms")
    mine = outcome.agent["batch"]
    if mine.note.startswith("batch route"):
        print(f"  {mine.note}")
    else:
        print(
            f"  batch route, {mine.count:,} raises in requests of {SIZES.batch_size:,}, "
            f"{SIZES.batch_clients} clients: "
            f"answered {rate(mine.answered)} transitions/s, e2e {rate(mine.end_to_end)}"
            f" transitions/s {mine.note}"
        )
    for name, check in outcome.checks.items():
        print(f"  every notification at {name:7s}: {check}")


def median(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan


def summary(rounds: list[Round]) -> bool:
    def each(get: Callable[[Round], float]) -> tuple[float, str]:
        values = [get(r) for r in rounds]
        return median(values), ", ".join(rate(v).strip() for v in values)

    print(
        f"targets (median of {len(rounds)} round{'s' if len(rounds) > 1 else ''}; each round"
        " in brackets):"
    )
    e2e, e2e_all = each(lambda r: r.agent["raises, 4 clients"].end_to_end)
    base, base_all = each(lambda r: r.anchor["raises, 4 clients"].answered)
    ratio = median(
        [
            r.agent["raises, 4 clients"].end_to_end / r.anchor["raises, 4 clients"].answered
            for r in rounds
        ]
    )
    ok_raise = ratio >= 0.8 and e2e >= 1500
    print(
        f"  raises/s, 4 clients, e2e: {e2e:,.0f} ({e2e_all}) vs anchor {base:,.0f} "
        f"({base_all}): {ratio:.2f} x (target >= 0.8 x and >= 1,500/s): {verdict(ok_raise)}"
    )
    p99 = median([r.agent["open loop"].p99 for r in rounds])
    every = ", ".join(ms(r.agent["open loop"].p99).strip() for r in rounds)
    print(
        f"  p99 at {SIZES.rate:,.0f} raises/s offered: {ms(p99).strip()} ms ({every}) "
        f"(target < 20 ms): {verdict(p99 < 0.020)}"
    )
    batch_note = rounds[0].agent["batch"].note
    if batch_note.startswith("batch route"):
        ok_batch = False
        print(f"  batch transitions/s e2e: {batch_note} (target >= 10,000): NOT met")
    else:
        value, all_ = each(lambda r: r.agent["batch"].end_to_end)
        ok_batch = value >= 10_000
        print(
            f"  batch transitions/s e2e: {value:,.0f} ({all_}) (target >= 10,000): "
            f"{verdict(ok_batch)}"
        )
    ok_delivery = True
    for name in TARGETS:
        worst = median([r.delivery[name][1] for r in rounds])
        every = ", ".join(ms(r.delivery[name][1]).strip() for r in rounds)
        ok = worst < 0.100
        ok_delivery &= ok
        print(
            f"  commit to delivery p99 at {SIZES.rate:,.0f}/s, {name:7s}: {ms(worst).strip()}"
            f" ms ({every}) (target < 100 ms): {verdict(ok)}"
        )
    ok_checks = all(c.startswith("ok") for r in rounds for c in r.checks.values())
    print(
        f"  every target got every notification, in order, once: "
        f"{'yes' if ok_checks else 'NO (see the rounds)'}"
    )
    return ok_raise and p99 < 0.020 and ok_batch and ok_delivery and ok_checks


SIZES = Sizes(10_000, 1000.0, 5.0, 8, 20_000, 1000, 2)


def main() -> int:
    global SIZES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=10_000,
        help="requests per closed-loop measurement (default 10,000)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="anchor + agent rounds")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop raises/s")
    parser.add_argument("--open-seconds", type=float, default=5.0)
    parser.add_argument("--open-connections", type=int, default=8)
    parser.add_argument("--batch-ops", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--batch-clients",
        type=int,
        default=2,
        help="2 x 1,000 operations fit the writer's default bound (2,000)",
    )
    parser.add_argument("--anchor-http", choices=("h11", "httptools"))
    parser.add_argument("--anchor-loop", choices=("asyncio", "uvloop"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1,000 requests, 1 s open loop, 5 batches, 1 round",
    )
    args = parser.parse_args()
    # SIGTERM (timeout, make interrupted) unwinds like Ctrl-C: the finally blocks stop the
    # agent, the anchor and the targets instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Each line as it is printed, also into a pipe or a file (make bench | tee).
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.quick:
        args.requests, args.open_seconds, args.rounds = 1000, 1.0, 1
        args.batch_ops = 5 * args.batch_size
    SIZES = Sizes(
        args.requests,
        args.rate,
        args.open_seconds,
        args.open_connections,
        args.batch_ops,
        args.batch_size,
        args.batch_clients,
    )
    http, loop = agent_stack()
    anchor_http, anchor_loop = args.anchor_http or http, args.anchor_loop or loop
    print(
        "control API end to end: agent on SQLite with the JSON lines file exporter, a syslog"
        " TCP collector and a v2c trap target"
    )
    print(
        f"  client: bench/http_client.py (asyncio streams, keep-alive) in the bench process;"
        f" agent, targets, anchor: one process each, not pinned ({_cores()} cores)"
    )
    print(
        f"  anchor: bare FastAPI + RaiseRequest + HTTPBearer, uvicorn http={anchor_http} "
        f"loop={anchor_loop} (the agent's code: http={http} loop={loop})"
    )
    ceiling = client_ceiling(SIZES)
    print(
        "  client ceiling against a null server: "
        + ", ".join(f"{k} {v:,.0f}/s" for k, v in ceiling.items())
    )
    rounds = []
    for number in range(1, args.rounds + 1):
        outcome = Round()
        with tempfile.TemporaryDirectory(prefix="provsync-bench-api-") as name:
            outcome.anchor = anchor_round(Path(name), SIZES, anchor_http, anchor_loop)
            agent_round(Path(name), SIZES, outcome)
        print_round(number, outcome)
        rounds.append(outcome)
    return 0 if summary(rounds) else 1


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    raise SystemExit(main())
