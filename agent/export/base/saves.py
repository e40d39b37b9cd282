"""An export target's committed position, saved through the alarm writer.

The save is a request to the alarm manager's writer, committed in its group commit with
whatever else is queued: no write transaction of its own competing with the writer for
the store's lock, and refused alike when the store is fenced. One save is in flight at a
time; the delivered position (the exporter's cursor) runs ahead of the saved one while it
is, or while the store refuses saves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent.alarms.ports import NotificationLog


class CursorSaves:
    """The saved position of target ``name`` and the save in flight.

    Args:
        name: the export target.
        log: where saves go.
        failed: called with what failed and why when the store refuses a save.
        saved_again: called after a save the store took.
    """

    def __init__(
        self,
        name: str,
        log: NotificationLog,
        *,
        failed: Callable[[str, Exception], None],
        saved_again: Callable[[], None],
    ) -> None:
        self.name = name
        self.log = log
        self.saved = 0
        """The position last committed to the store."""
        self.refused = False
        """The last save was refused: it is to be retried before anything more is sent."""
        self._failed = failed
        self._saved_again = saved_again
        self._saving: asyncio.Task[bool] | None = None

    async def save(self, seq: int) -> bool:
        """Commit the delivered position ``seq``; False (reported) when the store refuses."""
        try:
            await self.log.save_cursor(self.name, seq)
        except Exception as exc:
            self._failed("cannot save its cursor", exc)
            return False
        self.saved = max(self.saved, seq)
        self._saved_again()
        return True

    def save_in_background(self, seq: int) -> None:
        """Start saving ``seq`` while the next batch goes out (none may be in flight)."""
        self._saving = asyncio.create_task(self.save(seq), name=f"exporter:{self.name}:save")

    async def done(self) -> bool:
        """Wait for the save in flight, if any; False (and the save is to be retried)
        when the store refused it."""
        task, self._saving = self._saving, None
        if task is not None and not await task:
            self.refused = True
            return False
        return True

    async def settle(self, cursor: int) -> bool:
        """Wait for the save in flight, then save ``cursor`` if it is still ahead of it;
        True when the store has the delivered position."""
        if not await self.done():
            return False
        if self.saved != cursor and not await self.save(cursor):
            self.refused = True
            return False
        return True

    async def final(self, cursor: int) -> None:
        """At stop: the save in flight, then one more try if ``cursor`` is still ahead
        (its refusal, already reported, does not stop the retry here)."""
        await self.done()
        if self.saved != cursor:
            await self.save(cursor)
