"""Where the alarm writer's answers go: the callers' futures, settled after the commit.

A caller on another thread waits on a thread-safe ``concurrent.futures.Future``; a caller
on an event loop on an asyncio future, settled on its loop. The writer settles a whole
group commit's asyncio futures with one wake-up per loop, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from typing import Any

AnyFuture = Future[Any] | asyncio.Future[Any]
"""A caller's future; its result is the operation's (AlarmChange, seq, counts, None)."""


class Reply:
    """Where a request's result goes: a thread-safe Future, or an asyncio future + loop."""

    __slots__ = ("future", "loop")

    def __init__(self, future: AnyFuture, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.future = future
        self.loop = loop

    def claim(self) -> bool:
        """False when a thread-safe caller cancelled before the write began."""
        if isinstance(self.future, Future):
            return self.future.set_running_or_notify_cancel()
        return True

    def reclaimed(self) -> Reply:
        """The same reply, already claimed: for a retry that must not claim again."""
        return _ClaimedReply(self.future, self.loop)


class _ClaimedReply(Reply):
    __slots__ = ()

    def claim(self) -> bool:
        return True


def settle(future: AnyFuture, result: object) -> None:
    """Resolve ``future`` with ``result`` (an exception is raised to the caller)."""
    if future.done():
        return  # an asyncio caller gave up waiting; the change is committed anyway
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _settle_all(items: list[tuple[AnyFuture, object]]) -> None:
    for future, result in items:
        settle(future, result)


def deliver(replies: list[tuple[Reply, object]]) -> None:
    """Resolve callers; one wake-up per event loop per batch, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[AnyFuture, object]]] = {}
    for reply, result in replies:
        if reply.loop is None:
            settle(reply.future, result)
        else:
            by_loop.setdefault(reply.loop, []).append((reply.future, result))
    for loop, items in by_loop.items():
        # RuntimeError: that loop is closed, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, items)
