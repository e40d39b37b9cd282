"""Jobs in the store: sync jobs of the engine and syncs to the hub of the sharing service.

Blocking calls (run in threads). ``counts`` is JSON text on disk and a dict here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Row

from agent.clock import now
from agent.store.elements import Element
from agent.store.models import ELEMENTS, JOBS
from agent.store.rows import inserted_id

JobValue = str | int | datetime | dict[str, Any] | None
"""A value of a job column (``update(job, state="done", counts={...})``)."""


@dataclass(frozen=True, slots=True)
class Job:
    """One ``jobs`` row; ``counts`` decoded."""

    id: int
    element_id: int
    element: str
    kind: str
    trigger: str
    state: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    counts: dict[str, Any]
    error: str | None
    reason: str | None


def _job(row: Row[tuple[object, ...]]) -> Job:
    values = dict(row._mapping)
    values["counts"] = json.loads(str(values["counts"] or "{}"))
    return Job(**values)


class Jobs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, element: Element, kind: str, trigger: str, reason: str | None) -> int:
        with self.engine.begin() as conn:
            return inserted_id(
                conn.execute(
                    insert(JOBS).values(
                        element_id=element.id,
                        element=element.name,
                        kind=kind,
                        trigger=trigger,
                        state="queued",
                        created_at=now(),
                        counts="{}",
                        reason=reason,
                    )
                )
            )

    def update(self, job_id: int, **values: JobValue) -> None:
        if "counts" in values:
            values["counts"] = json.dumps(values["counts"])
        with self.engine.begin() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))

    def get(self, job_id: int) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        return None if row is None else _job(row)

    def recent(self, element: str | None = None, limit: int = 200) -> list[Job]:
        """The last ``limit`` jobs (of one element's name, if given), oldest first."""
        query = select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)
        if element:
            query = query.where(JOBS.c.element == element)
        with self.engine.connect() as conn:
            return [_job(r) for r in reversed(list(conn.execute(query)))]

    def last_attempts(self) -> dict[int, datetime]:
        """When each element's last job ended, whatever its outcome."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(JOBS.c.element_id, func.max(JOBS.c.ended_at)).group_by(JOBS.c.element_id)
            )
            return {int(element_id): ended for element_id, ended in rows if ended is not None}

    def fail_interrupted(self) -> list[Job]:
        """Jobs left running or queued by a crash: failed, so the next sync escalates;
        the jobs as they were (a [cluster]'s new leader queues them again)."""
        with self.engine.begin() as conn:
            left = [
                _job(r)
                for r in conn.execute(
                    select(JOBS).where(JOBS.c.state.in_(["queued", "running"])).order_by(JOBS.c.id)
                )
            ]
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id.in_([j.id for j in left]))
                .values(state="failed", ended_at=now(), error="interrupted by an agent restart")
            )
            conn.execute(
                update(ELEMENTS)
                .where(ELEMENTS.c.sync_state == "running")
                .values(sync_state="failed", last_init_ok=False)
            )
        return left
