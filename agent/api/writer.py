"""Many operations handed to the alarm writer at once, answered on asyncio futures.

``AlarmManager.submit`` answers each operation on a thread-safe ``concurrent.futures``
Future, which the writer thread settles one by one (a lock and a condition each). The
batch route queues up to ``[api] max_batch`` operations from the event loop and waits for
them there, so asyncio futures do: the writer settles all those of a group commit with
one wake-up of the loop, as it does for the single routes (``AlarmManager._call``).

This belongs in the manager as ``AlarmManager.submit_many``; it is here, on the
manager's queueing internals, until it moves there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agent.alarms.manager import AlarmManager, _Reply
from agent.alarms.operations import Operation
from agent.errors import StoreError


def submit_many(manager: AlarmManager, ops: Sequence[Operation]) -> list[asyncio.Future[Any]]:
    """Queue ``ops`` in order (not bounded: the caller checked the writer's bound for
    all of them); each future resolves after its operation's commit, in queue order.

    Raises:
        StoreError: the manager is not running.
    """
    if manager._thread is None:
        raise StoreError("the alarm manager is not running")
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Any]] = []
    for op in ops:
        future: asyncio.Future[Any] = loop.create_future()
        manager._enqueue(op, _Reply(future, loop), False)
        futures.append(future)
    return futures
