"""The alarm writer thread: queued requests applied and committed in group commits.

It drains whatever is queued (up to ``batch_max``), loads the alarms those requests touch
into a working set, applies each request to it (agent.alarms.transitions), writes the
result in one transaction (agent.alarms.persistence), then publishes the commit (log
tail, ``committed_seq``, the commit feed) before the callers hear back
(agent.alarms.replies), so whoever they tell finds the change. A request that breaks a
group commit is found by applying the others one by one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from loguru import logger
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from agent.alarms.active import ActiveKeys
from agent.alarms.feed import Commit, CommitFeedListener, LogTail
from agent.alarms.operations import AckOp, ClearOp, CursorOp, EventOp, Operation, RaiseOp
from agent.alarms.persistence import WriterStore
from agent.alarms.ports import CommitListener
from agent.alarms.replies import Reply, deliver, settle
from agent.alarms.retention import Holding
from agent.alarms.transitions import Batch, Clock, Transitions
from agent.errors import OverloadedError, ProvsyncError, StoreError, StoreFencedError
from agent.store.outage import ThrottledLog, is_store_outage

_Request = tuple[Operation, Reply]
Result = object
"""What a request answers: an AlarmChange, a sequence number, purge counts, None, or the
ProvsyncError it failed with."""


class AlarmWriter:
    """The queue, the writer thread and what each group commit publishes.

    Args: as :class:`agent.alarms.manager.AlarmManager`'s (``holdings`` is its map).
    """

    def __init__(
        self,
        engine: Engine,
        transitions: Transitions,
        holdings: dict[str, Holding],
        *,
        batch_max: int,
        clock: Clock,
        pending_max: int,
        write_guard: Callable[[], None] | None,
        tail_size: int,
    ) -> None:
        self.transitions = transitions
        self.counters = transitions.counters
        self.store = WriterStore(engine, transitions, holdings, clock)
        self.tail = LogTail(tail_size)
        self.active = ActiveKeys()
        """Key -> id of every active alarm; the writer is the only one changing them."""
        self.committed_seq = 0
        self.refused = 0
        self.listeners: list[CommitListener] = []
        self.feed: list[CommitFeedListener] = []
        self.write_guard = write_guard
        self.pending_max = pending_max
        self.pending = 0
        self._batch_max = batch_max
        # None: stop (after committing what was queued before it).
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._pending_lock = threading.Lock()
        self._failures = ThrottledLog()
        self._thread: threading.Thread | None = None
        self._counters_stale = False
        """Set by a failed commit: it may have reached the store although its answer was
        lost, or the store was fenced; the next write reloads the counters first."""
        self._committing = False
        """Set while the group commit's COMMIT (and the engine's commit event) runs: a
        failure from then on may have committed, one before cannot have."""

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._load_counters()
        self._thread = threading.Thread(target=self._run, name="alarm-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _load_counters(self) -> None:
        self.active = self.store.load_counters()
        self.committed_seq = self.counters.last_seq

    def enqueue(self, op: Operation, reply: Reply, bounded: bool) -> None:
        if self.write_guard is not None:
            # Fenced: refused at once, not after the writer gets to it. A group commit
            # still in flight when the store hung (an exporter's cursor save, say) would
            # otherwise hold it, and answer it only once the lock is back. The guard is
            # asked again before each group commit.
            try:
                self.write_guard()
            except StoreFencedError as exc:
                settle(reply.future, StoreFencedError(str(exc)))
                return
        if isinstance(op, CursorOp):
            # Not counted as a request waiting: at most one per export target, and one
            # row per target in the group commit, it takes nothing from the API's bound.
            self._queue.put((op, reply))
            return
        # Refused before it is queued, so a refusal costs nothing and changes nothing;
        # the count includes the batch being written, which is what a new request waits for.
        with self._pending_lock:
            if bounded and self.pending_max and self.pending >= self.pending_max:
                self.refused += 1
                raise OverloadedError(
                    f"the alarm writer has {self.pending} requests waiting (bound "
                    f"{self.pending_max}); retry later"
                )
            self.pending += 1
        self._queue.put((op, reply))

    def _answered(self, count: int) -> None:
        with self._pending_lock:
            self.pending -= count

    # ----------------------------------------------------------------- writer thread
    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self.store.release()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop_after = False
            while len(batch) < self._batch_max:
                try:
                    extra = self._queue.get_nowait()
                except queue.Empty:
                    break
                if extra is None:
                    stop_after = True
                    break
                batch.append(extra)
            try:
                self._commit(batch)
            finally:
                self._answered(sum(1 for op, _ in batch if not isinstance(op, CursorOp)))
            if stop_after:
                return

    def _commit(self, batch: list[_Request]) -> None:
        live = [(op, reply) for op, reply in batch if reply.claim()]
        if not live:
            return
        try:
            results, work = self._apply([op for op, _ in live])
        except Exception as exc:
            if isinstance(exc, StoreFencedError):
                # Nothing may be written until the lock is back (the loss is logged once,
                # by the store): every request fails at once with that reason.
                deliver([(reply, StoreFencedError(str(exc))) for _, reply in live])
                return
            if is_store_outage(exc):
                # The store is down, not this request: every request of the batch fails
                # alike (one by one would only wait for the store again), one log line.
                self._failures.warning("alarm store write failed", exc)
                why = "the store could not commit the change; retry later"
                deliver([(reply, StoreError(why)) for _, reply in live])
                return
            if len(live) == 1:
                logger.exception("alarm store write failed")
                deliver([(live[0][1], StoreError("the store refused the change; see the log"))])
                return
            # One request broke the group commit: apply them one by one so the others land.
            for op, reply in live:
                self._commit([(op, reply.reclaimed())])
            return
        # Published before the callers hear back, so whoever they tell sees it committed.
        changed = self._publish(work)
        deliver([(reply, result) for (_, reply), result in zip(live, results, strict=True)])
        if changed:
            self._notify()

    def _publish(self, work: Batch) -> bool:
        """The tail, ``committed_seq``, then the commit feed; False if nothing but cursors
        changed (no reader has anything new to look at)."""
        notes = tuple(work.notes)
        last_seq = self.counters.last_seq
        if work.purged_through:
            # A row the store no longer has must not come from the tail: a target behind
            # it reads the store, where the gap is visible (its gap notice).
            self.tail.discard_through(work.purged_through)
        self.tail.extend(notes)
        # After the tail: an exporter that sees the new last_seq finds the rows there.
        self.committed_seq = last_seq
        changed_ids = work.new_ids | work.dirty_ids
        if not (notes or changed_ids or work.purged or work.purged_through):
            return False
        if self.feed:
            commit = Commit(
                first_seq=notes[0].seq if notes else last_seq + 1,
                last_seq=last_seq,
                notifications=notes,
                alarms=tuple(work.by_id[i] for i in sorted(changed_ids)),
                purged=frozenset(work.purged),
            )
            for listener in self.feed:
                try:
                    listener(commit)
                except Exception:
                    logger.exception("commit feed listener failed")
        return True

    def _notify(self) -> None:
        for listener in self.listeners:
            try:
                listener(self.committed_seq)
            except Exception:
                logger.exception("commit listener failed")

    def _apply(self, ops: list[Operation]) -> tuple[list[Result], Batch]:
        kept = self.store.conn is not None
        try:
            return self._write(ops)
        except DBAPIError as exc:
            # The kept connection was found dead by a statement, before the COMMIT: the
            # server went away since the last group commit (a restart, say). Nothing of
            # this transaction can have committed, so it is written again, once, on a
            # fresh connection from the pool (whose checkout pings it on PostgreSQL):
            # what the pool's pre-ping did for us when every commit checked one out.
            if not (kept and exc.connection_invalidated and not self._committing):
                raise
        return self._write(ops)

    def _write(self, ops: list[Operation]) -> tuple[list[Result], Batch]:
        if self.write_guard is not None:
            self.write_guard()
        if self._counters_stale:
            # Reusing an id or sequence number that did commit would fail every later write.
            self._load_counters()
            self._counters_stale = False
        saved = (self.counters.last_seq, self.counters.last_alarm_id)
        # Stays set after a failed COMMIT, for _apply to see: no second try then.
        self._committing = False
        conn = self.store.connection()
        try:
            with conn.begin():
                work = Batch()
                self.store.prefetch(conn, work, ops, self.active)
                results: list[Result] = []
                for op in ops:
                    try:
                        results.append(self._dispatch(conn, work, op))
                    except ProvsyncError as exc:
                        results.append(exc)
                self.store.flush(conn, work)
                self._committing = True  # leaving the block commits
            self._remember_active(work)
            return results, work
        except BaseException as exc:
            self.counters.last_seq, self.counters.last_alarm_id = saved
            self._counters_stale = True
            if conn.invalidated or is_store_outage(exc) or not isinstance(exc, DBAPIError):
                # Not trusted for the next commit: the pool discards it or rolls it back,
                # and the next group commit checks out another. A constraint violation
                # (a DBAPIError that is no outage) leaves it as good as new.
                self.store.release()
            raise

    def _remember_active(self, work: Batch) -> None:
        """After a commit: keep the key -> id map of active alarms current."""
        active = self.active
        for row in work.by_id.values():
            key = (row["type_id"], row["resource"], row["qualifier"])
            if not row["cleared"]:
                active.set(key, row["id"])
            else:
                active.discard(key, row["id"])

    def _dispatch(self, conn: Connection, work: Batch, op: Operation) -> Result:
        if isinstance(op, RaiseOp):
            return self.transitions.raise_(work, op)
        if isinstance(op, ClearOp):
            return self.transitions.clear(work, op)
        if isinstance(op, AckOp):
            return self.transitions.ack(work, op)
        if isinstance(op, EventOp):
            return self.transitions.event(work, op)
        if isinstance(op, CursorOp):
            work.cursors[op.name] = op.seq
            return None
        return self.store.purge(conn, work, op, self.active)
