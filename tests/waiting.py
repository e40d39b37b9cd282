"""Waits of the tests: poll a condition until it holds, instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from agent.http_tls import client_context

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], within: float = 30.0, every: float = 0.05) -> T:
    """The first truthy value of ``check()``; an AssertionError naming ``what`` after
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


async def until(check: Callable[[], object], within: float = 20.0, every: float = 0.02) -> None:
    """In a test's event loop: until ``check()`` holds (the loop runs meanwhile)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {within}s")
        await asyncio.sleep(every)


def healthy(base_url: str, timeout: float = 1.0) -> bool:
    """``GET /api/v1/health`` answers 200: the agent (or a simulator) at ``base_url`` is up.

    The clients share one TLS context (agent.http_tls): a poll must not cost the CA
    bundle's load each time."""
    try:
        url = f"{base_url}/api/v1/health"
        return httpx.get(url, timeout=timeout, verify=client_context()).status_code == 200
    except httpx.TransportError:
        return False
