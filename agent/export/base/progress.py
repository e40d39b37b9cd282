"""A delivery's deadline that starts over at every acknowledged notification.

A batch of informs sent one after another may take far longer than ``deliver_timeout``
as a whole (500 at 100 ms RTT take 50 s) while the target is healthy; only a target that
stops answering is stuck. What a delivery given up on reports as it ends (within
``CANCEL_GRACE``) still counts; what it reports later is ignored (those notifications are
sent again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from agent.errors import ExportError

CANCEL_GRACE = 1.0
"""Seconds a delivery given up on may take to end (and report its progress)."""


async def bounded(step: Coroutine[Any, Any, None], what: str, timeout: float) -> None:
    """``step`` within ``timeout``: a stuck peer is a failure, retried.

    Raises:
        ExportError: ``step`` did not end in time.
    """
    try:
        await asyncio.wait_for(step, timeout)
    except TimeoutError:
        raise ExportError(f"{what} timed out after {timeout:g}s") from None


class Progress:
    """What the target acknowledged during the delivery attempt running now."""

    def __init__(self) -> None:
        self.acked: int | None = None
        self._at = 0.0
        # Set while a delivery attempt runs: progress reported outside one (late, from an
        # attempt already given up on) must not count for the next connect or batch.
        self._delivering = False

    def report(self, seq: int) -> None:
        """The target acknowledged everything up to ``seq``; restarts the deadline. A call
        outside a delivery attempt (late, after it was given up on) is ignored."""
        if not self._delivering:
            return
        self.acked = seq
        with contextlib.suppress(RuntimeError):  # called outside a loop: no deadline
            self._at = asyncio.get_running_loop().time()

    def take(self) -> int | None:
        """What the last attempt got acknowledged (then forgotten)."""
        acked, self.acked = self.acked, None
        return acked

    async def run(self, delivery: Coroutine[Any, Any, None], timeout: float) -> None:
        """Run ``delivery``, given up only after ``timeout`` without progress.

        A delivery given up on is cancelled and then awaited for at most
        ``CANCEL_GRACE`` seconds, so that what it reports as it ends (the acknowledgements
        it counted) is kept before the failure is accounted.

        Raises:
            ExportError: no progress for ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        self.acked = None
        self._at = loop.time()
        self._delivering = True
        task = asyncio.ensure_future(delivery)
        # Its outcome after we gave up on it is of no interest (and must not be reported
        # as "never retrieved").
        task.add_done_callback(_consume)
        try:
            while True:
                remaining = self._at + timeout - loop.time()
                if remaining <= 0:
                    task.cancel()
                    await asyncio.wait({task}, timeout=CANCEL_GRACE)
                    raise ExportError(f"delivery timed out after {timeout:g}s without progress")
                done, _ = await asyncio.wait({task}, timeout=remaining)
                if done:
                    task.result()
                    return
        finally:
            if not task.done():
                task.cancel()
            self._delivering = False


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
