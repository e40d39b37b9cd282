"""Waits of the benches on the processes they start: a health URL, an agent's job, the
process's own end."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import httpx

from agent.cli.api_types import Job
from agent.cli.client import JOB_ENDED, Client
from agent.http_tls import client_context


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, within: float = 60) -> None:
    """Until ``url`` answers 200; a ``proc`` that exits first ends the bench at once."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2, verify=client_context()).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def wait_job(api: Client, job_id: int, within: float, poll: float = 0.1) -> Job:
    """The agent's job once it has ended, done or failed (the caller decides what a failed
    one means); the bench ends if it has not within ``within`` seconds."""
    job = api.wait_job(job_id, within, poll=poll)
    if job["state"] not in JOB_ENDED:
        raise SystemExit(f"job {job_id} did not finish in {within:.0f} s")
    return job


def stop(proc: subprocess.Popen[Any], within: float = 30) -> None:
    """SIGTERM, and SIGKILL if it has not ended ``within`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
