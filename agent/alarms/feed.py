"""What each group commit changed, handed to in-process readers without a store read.

The alarm manager's writer knows, at commit, every log row it wrote and the state of
every alarm it changed. Readers in the same process (the SNMP view, the exporters) take
that from here instead of reading the store again after each commit: their cost per
commit is proportional to what changed. The store stays the truth: a reader that misses
a commit (it started later, or the tail no longer reaches its position) reads the store,
as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.alarms.records import Notification

AlarmRow = Mapping[str, Any]
"""One ``alarms`` row (the fields of ``records.ALARM_FIELDS``) as it is after the commit."""


@dataclass(frozen=True, slots=True)
class Commit:
    """One group commit, as published by the writer thread after it committed.

    ``notifications`` are the log rows written, in sequence order: their seqs run from
    ``first_seq`` to ``last_seq`` without a gap (a commit with no log row has
    ``first_seq == last_seq + 1``). ``alarms`` is the state after the commit of every
    alarm the commit changed, repeats (a count or time changed without a log row)
    included; a purge's deleted alarms are listed in ``purged``.
    """

    first_seq: int
    last_seq: int
    notifications: tuple[Notification, ...]
    alarms: tuple[AlarmRow, ...]
    purged: frozenset[int] = frozenset()


CommitFeedListener = Callable[[Commit], None]
"""Called from the writer thread after each commit, before the callers hear back: it
must not block (hand the work to an event loop with ``call_soon_threadsafe``)."""


class LogTail:
    """The newest committed log rows, in memory, for exporters that are nearly caught up.

    Appended by the writer thread after each commit, read by exporters on the event loop
    (or in threads): a lock keeps the two consistent. Holds at least the newest ``size``
    rows and at most an eighth more (trimmed in one slice every ``size / 8`` rows, so
    appends stay amortized O(1) and the memory held stays close to ``size`` rows).

    Every row it holds is still in the store: the writer drops the rows a purge deleted
    (:meth:`discard_through`) in the commit that deleted them. It never has a hole: a
    commit it did not see, or one whose rows are not contiguous, empties it, and readers
    behind its oldest row read the store.
    """

    def __init__(self, size: int = 16_384) -> None:
        self._size = max(1, size)
        self._slack = max(1, self._size // 8)
        self._rows: list[Notification] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def extend(self, notifications: tuple[Notification, ...]) -> None:
        if not notifications:
            return
        first, last = notifications[0].seq, notifications[-1].seq
        with self._lock:
            rows = self._rows
            if last - first != len(notifications) - 1:
                # Not contiguous (cannot happen with one writer): offsets would be wrong.
                rows.clear()
                return
            if rows and first != rows[-1].seq + 1:
                # A commit this tail did not see (one writer cannot do that, but a tail
                # with a hole would hand out a gap as if it were purged): start over.
                rows.clear()
            rows.extend(notifications)
            if len(rows) > self._size + self._slack:
                del rows[: len(rows) - self._size]

    def discard_through(self, seq: int) -> None:
        """Forget the rows up to ``seq`` (a purge deleted rows up to there): a reader
        behind it then reads the store, which shows what is gone."""
        with self._lock:
            rows = self._rows
            if rows and rows[0].seq <= seq:
                del rows[: seq - rows[0].seq + 1]

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def after(self, seq: int, limit: int) -> list[Notification] | None:
        """Up to ``limit`` rows with seq > ``seq``, in order; None when the tail does not
        reach back to ``seq + 1`` (read the store instead). An empty list: nothing newer
        has been committed as far as this tail knows."""
        with self._lock:
            rows = self._rows
            if not rows or seq + 1 < rows[0].seq:
                return None
            # Rows are contiguous by seq, so the offset is exact.
            start = seq + 1 - rows[0].seq
            return rows[start : start + limit]


__all__ = ["AlarmRow", "Commit", "CommitFeedListener", "LogTail"]
