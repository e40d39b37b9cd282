"""Know when this process committed a change to some tables, without reading them.

A reader that shows a small table written by other modules (the SNMP view's element
table: elements and their rejected distributions) would otherwise have to read it again
after every commit of anything. A :class:`TableWatch` follows the engine's events
instead: a statement that inserts into, updates or deletes from a watched table marks
its connection; the commit of that transaction moves :attr:`TableWatch.generation` and
wakes the listeners; a rollback forgets the mark. A reader notes the generation before
it reads and reads again when it moved.

The generation moves once the transaction is over, when the connection goes back to the
pool or begins its next transaction, not at SQLAlchemy's ``commit`` event: that event
fires before the driver commits, and a reader woken then could read the old rows and
believe itself current. Every writer of the agent (``with engine.begin()``) returns its
connection right after the commit, so the generation has moved before the writer's
caller goes on (a control API reply, say).

Limits, all on the side of moving too often, except the first: only writes through this
engine in this process are seen (the agent's writers all are; the CLI goes through the
API); an UPDATE whose SET clause names none of a table's watched columns does not count;
a statement given as SQL text is matched by the table name after ``INSERT INTO``,
``UPDATE`` or ``DELETE FROM``; a change rolled back to a savepoint still counts;
statements run on the DBAPI cursor itself, without SQLAlchemy's execution, are not seen
(the alarm writer's bulk writes, ``agent.store.rawsql``: it writes none of the tables
watched here, tests/test_writer_driver.py checks that).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, event
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.engine.interfaces import ExecutionContext
from sqlalchemy.sql.dml import Update, UpdateBase

_DML_TEXT = re.compile(
    r"""\s*(?:insert\s+(?:or\s+\w+\s+)?into|update|delete\s+from)\s+["`]?(\w+)""",
    re.IGNORECASE,
)

_DIRTY = 1
_COMMITTED = 2


class TableWatch:
    """Counts the committed transactions of this process that changed watched tables.

    Args:
        engine: the store's engine; the watch listens to its events until :meth:`close`.
        tables: each watched table, with the columns whose update counts (None: any).
    """

    def __init__(self, engine: Engine, tables: Mapping[Table, Iterable[str] | None]) -> None:
        self.engine = engine
        self._columns: dict[str, frozenset[str] | None] = {
            table.name: None if columns is None else frozenset(columns)
            for table, columns in tables.items()
        }
        self._key = f"table-watch-{id(self)}"
        """This watch's mark in the pooled connection's ``info`` (several may coexist)."""
        self._lock = threading.Lock()
        self._generation = 0
        self._listeners: list[Callable[[int], None]] = []
        self._hooks: list[tuple[Any, str, Callable[..., None]]] = [
            (engine, "after_cursor_execute", self._after_cursor_execute),
            (engine, "begin", self._finished),
            (engine, "commit", self._commit),
            (engine, "rollback", self._rollback),
            (engine, "checkin", self._checkin),
        ]
        for target, name, hook in self._hooks:
            event.listen(target, name, hook)

    @property
    def generation(self) -> int:
        """Moves (by one or more) after each committed change of a watched table."""
        return self._generation

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """``listener(generation)`` is called, in the thread that committed, after the
        generation moved. It must not block (hand work to a loop with
        ``call_soon_threadsafe``)."""
        self._listeners.append(listener)

    def touch(self) -> None:
        """Move the generation as a commit would: a reader of another process's writes
        (a standby's view of the leader's, agent.cluster.follow) reads the tables again."""
        with self._lock:
            self._generation += 1
            generation = self._generation
        for listener in list(self._listeners):
            listener(generation)

    def close(self) -> None:
        """Stop following the engine's events."""
        for target, name, hook in self._hooks:
            if event.contains(target, name, hook):
                event.remove(target, name, hook)
        self._listeners.clear()

    # ------------------------------------------------------------------ engine events
    def _after_cursor_execute(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        # The cursor-level event: exec_driver_sql() statements (bulk writes) have no
        # statement-level one.
        compiled = context.compiled if isinstance(context, DefaultExecutionContext) else None
        if (
            isinstance(context, DefaultExecutionContext)
            and compiled is not None
            and isinstance(compiled.statement, UpdateBase)
        ):
            changes = self._changes(compiled.statement, context.compiled_parameters)
        else:
            found = _DML_TEXT.match(statement)
            changes = found is not None and found.group(1).lower() in self._columns
        if changes:
            conn.info[self._key] = _DIRTY

    def _changes(self, clause: UpdateBase, parameters: Sequence[Mapping[str, Any]]) -> bool:
        name = getattr(clause.table, "name", None)
        if name not in self._columns:
            return False
        watched = self._columns[name]
        if watched is None or not isinstance(clause, Update):
            return True
        return not watched.isdisjoint(_set_columns(clause, parameters))

    def _commit(self, conn: Connection) -> None:
        info = conn.info
        if info.get(self._key) == _DIRTY:
            info[self._key] = _COMMITTED

    def _rollback(self, conn: Connection) -> None:
        if conn.invalidated:
            # A disconnect mid-transaction: the connection (and its ``info``, which the
            # pool clears before it connects again) is gone, and asking for ``info``
            # would raise PendingRollbackError over the caller's real error.
            return
        info = conn.info
        if info.get(self._key) == _DIRTY:
            del info[self._key]

    def _finished(self, conn: Connection) -> None:
        """A new transaction begins on ``conn``: the previous one's commit is done."""
        self._publish(conn.info)

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        self._publish(record.info)

    def _publish(self, info: dict[Any, Any]) -> None:
        state = info.get(self._key)
        if state is None:
            return
        del info[self._key]
        if state != _COMMITTED:
            return  # returned to the pool uncommitted: the pool rolls it back
        with self._lock:
            self._generation += 1
            generation = self._generation
        for listener in list(self._listeners):
            listener(generation)


def _set_columns(clause: Update, parameters: Sequence[Mapping[str, Any]]) -> set[str]:
    """The names an UPDATE may set: its ``values()`` and its bound parameters (SET
    parameters are named after their column; where-clause ones only err on the side of
    counting)."""
    names: set[str] = set()
    for key in clause._values or ():  # values() and ordered_values() alike
        names.add(key if isinstance(key, str) else str(getattr(key, "key", key)))
    for given in parameters:
        names.update(given)
    return names


__all__ = ["TableWatch"]
