"""Export targets' committed positions in the notification log (``exporter_cursors``).

The exporters' regular saves go through the alarm writer's group commit
(``AlarmManager.save_cursor``); these are the reads, and the one save a target makes on
its own: its first position, when it is seen for the first time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from agent.store.models import CURSORS as _CURSORS
from agent.store.models import LOG as _LOG
from agent.store.upsert import upsert


def load_cursor(engine: Engine, name: str) -> int:
    """Target ``name``'s committed position (0: none yet)."""
    with engine.connect() as conn:
        value = conn.execute(select(_CURSORS.c.last_seq).where(_CURSORS.c.name == name)).scalar()
    return int(value or 0)


def first_cursor(engine: Engine, name: str, last_seq: int) -> int:
    """The target's cursor; a target seen for the first time starts below the oldest entry
    the log still holds (the whole log is delivered to it), and that is saved at once: what
    was purged before it existed is no loss of its own, what is purged later is."""
    with engine.connect() as conn:
        value = conn.execute(select(_CURSORS.c.last_seq).where(_CURSORS.c.name == name)).scalar()
        if value is not None:
            return int(value)
        oldest = conn.execute(select(func.min(_LOG.c.seq))).scalar()
    start = int(oldest) - 1 if oldest is not None else last_seq
    save_cursor(engine, name, start)
    return start


def save_cursor(engine: Engine, name: str, seq: int) -> None:
    """Commit target ``name``'s position in a transaction of its own."""
    values = {"name": name, "last_seq": seq, "updated_at": datetime.now(UTC)}
    with engine.begin() as conn:
        upsert(conn, _CURSORS, [values], ["name"])
