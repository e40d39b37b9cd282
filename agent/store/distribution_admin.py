"""What operators and the distribution-errors alarm see of the distributions, and do to
them: list them, retry or delete the failed ones, count the rejected ones, purge the
applied ones. Blocking calls (run in threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, func, select, update

from agent.clock import now
from agent.store.distributions import OPEN_STATES, Distribution, distribution_of
from agent.store.models import CONFLICTS, DISTRIBUTIONS


def _selection(
    ids: Sequence[int] | None, element_id: int | None, states: Sequence[str]
) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = [DISTRIBUTIONS.c.state.in_(states)]
    if ids is not None:
        clauses.append(DISTRIBUTIONS.c.id.in_(ids))
    if element_id is not None:
        clauses.append(DISTRIBUTIONS.c.element_id == element_id)
    return and_(*clauses)


def _rejected_since(element_id: int) -> ColumnElement[bool]:
    """Rejected by the element and neither applied since nor deleted."""
    return and_(
        DISTRIBUTIONS.c.element_id == element_id,
        DISTRIBUTIONS.c.rejected.is_(True),
        DISTRIBUTIONS.c.state != "done",
    )


class DistributionAdmin:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def listed(
        self,
        *,
        element_id: int | None = None,
        states: Sequence[str] = OPEN_STATES,
        limit: int = 1000,
    ) -> list[Distribution]:
        query = (
            select(DISTRIBUTIONS)
            .where(_selection(None, element_id, states))
            .order_by(DISTRIBUTIONS.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [distribution_of(r) for r in conn.execute(query)]

    def failed(
        self, ids: Sequence[int] | None, element_id: int | None, limit: int
    ) -> tuple[list[Distribution], int]:
        """The failed distributions of ``ids`` (all when None) and ``element_id``, the
        first ``limit`` by id, and how many there are: the one selection of retry and
        remove, so what a confirmation lists is what they take."""
        where = _selection(ids, element_id, ("error",))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(DISTRIBUTIONS).where(where).order_by(DISTRIBUTIONS.c.id).limit(limit)
            )
            listed = [distribution_of(r) for r in rows]
            total = conn.execute(select(func.count()).select_from(DISTRIBUTIONS).where(where))
            return listed, int(total.scalar() or 0)

    def retry(self, ids: Sequence[int] | None, element_id: int | None) -> dict[str, int]:
        """Failed distributions go out again now; returns how many per element name."""
        at = now()
        with self.engine.begin() as conn:
            where = _selection(ids, element_id, ("error",))
            found = _per_element(conn, where)
            conn.execute(
                update(DISTRIBUTIONS)
                .where(where)
                .values(state="pending", next_attempt_at=at, updated_at=at)
            )
        return found

    def remove(self, ids: Sequence[int] | None, element_id: int | None) -> dict[str, int]:
        """Delete failed distributions: the element keeps what it has."""
        with self.engine.begin() as conn:
            where = _selection(ids, element_id, ("error",))
            found = _per_element(conn, where)
            conn.execute(delete(DISTRIBUTIONS).where(where))
        return found

    def failed_count(self, element_id: int) -> int:
        """Updates the element rejected and that were neither applied since nor deleted."""
        with self.engine.connect() as conn:
            count = conn.execute(select(func.count()).where(_rejected_since(element_id))).scalar()
        return int(count or 0)

    def last_error(self, element_id: int) -> Distribution | None:
        """The newest rejected update of the element not applied since (failed or retried)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(DISTRIBUTIONS)
                .where(_rejected_since(element_id))
                .order_by(DISTRIBUTIONS.c.id.desc())
                .limit(1)
            ).first()
        return None if row is None else distribution_of(row)

    def purge_done(self, older_than: float) -> int:
        """Applied distributions and resolved conflicts older than ``older_than`` seconds."""
        before = now() - timedelta(seconds=older_than)
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(DISTRIBUTIONS).where(
                    and_(DISTRIBUTIONS.c.state == "done", DISTRIBUTIONS.c.updated_at < before)
                )
            )
            conn.execute(
                delete(CONFLICTS).where(
                    and_(CONFLICTS.c.state == "resolved", CONFLICTS.c.resolved_at < before)
                )
            )
        return int(result.rowcount or 0)


def _per_element(conn: Connection, where: ColumnElement[bool]) -> dict[str, int]:
    rows = conn.execute(
        select(DISTRIBUTIONS.c.element, func.count()).where(where).group_by(DISTRIBUTIONS.c.element)
    )
    return {str(name): int(count) for name, count in rows}
