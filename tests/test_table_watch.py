"""TableWatch: committed changes of watched tables move the generation, nothing else does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text, update

from agent.clock import now
from agent.store.access import StoreAccess
from agent.store.database import Store
from agent.store.encryption import KeyRing, StoreKey
from agent.store.models import DISTRIBUTIONS, ELEMENTS, JOBS
from agent.store.table_watch import TableWatch

RING = KeyRing([StoreKey.generate()], Path("test.key"))


@pytest.fixture
def watch(store: Store) -> Iterator[TableWatch]:
    watching = TableWatch(store.engine, {ELEMENTS: ("name", "sync_state"), DISTRIBUTIONS: None})
    yield watching
    watching.close()


def add(store: Store, name: str) -> int:
    element = StoreAccess(store.engine).elements.add(
        name, "call-server", "http://127.0.0.1:9", "http", 0, None, ring=RING
    )
    return int(element.id)


def test_a_committed_change_moves_it_once_the_commit_is_done(
    store: Store, watch: TableWatch
) -> None:
    seen: list[tuple[int, list[str]]] = []

    def listener(generation: int) -> None:
        # Another connection, at once: the driver's commit must be done by now.
        with store.engine.connect() as conn:
            seen.append((generation, list(conn.execute(select(ELEMENTS.c.name)).scalars())))

    watch.add_listener(listener)
    assert watch.generation == 0
    element_id = add(store, "cm1")
    assert seen == [(1, ["cm1"])]
    StoreAccess(store.engine).elements.set_state(element_id, sync_state="running")
    StoreAccess(store.engine).elements.remove("cm1")
    assert watch.generation == 3
    assert seen[-1] == (3, [])


def test_rollbacks_other_tables_and_other_columns_do_not_move_it(
    store: Store, watch: TableWatch
) -> None:
    element_id = add(store, "cm1")
    before = watch.generation
    with store.engine.connect() as conn:
        conn.execute(update(ELEMENTS).values(sync_state="failed"))
        conn.rollback()
    StoreAccess(store.engine).elements.set_state(element_id, cursor=42, epoch="e2")  # not watched
    StoreAccess(store.engine).jobs.create(
        StoreAccess(store.engine).elements.get("cm1"), "init", "manual", None
    )
    with store.engine.connect() as conn:  # read only
        conn.execute(select(ELEMENTS)).all()
    assert watch.generation == before
    with store.engine.begin() as conn:
        conn.execute(update(ELEMENTS).where(ELEMENTS.c.id == element_id), {"sync_state": "idle"})
    assert watch.generation == before + 1
    with store.engine.begin() as conn:
        conn.execute(select(JOBS)).all()
        conn.execute(
            insert(JOBS).values(
                element_id=element_id,
                element="cm1",
                kind="init",
                trigger="manual",
                state="queued",
                created_at=now(),
                counts="{}",
            )
        )
    assert watch.generation == before + 1


def test_sql_text_and_long_lived_connections(store: Store, watch: TableWatch) -> None:
    element_id = add(store, "cm1")
    before = watch.generation
    with store.engine.connect() as conn:
        conn.execute(text("UPDATE elements SET name = 'cm2' WHERE id = :id"), {"id": element_id})
        conn.commit()
        assert watch.generation == before  # not yet: this connection is still out
        conn.execute(select(ELEMENTS)).all()  # its next transaction begins: the commit is done
        assert watch.generation == before + 1
        conn.exec_driver_sql('DELETE FROM "distributions"')
        conn.commit()
    assert watch.generation == before + 2  # back in the pool
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE jobs SET state = 'done'")
    assert watch.generation == before + 2


def test_closed_watch_sees_nothing(store: Store, watch: TableWatch) -> None:
    calls: list[int] = []
    watch.add_listener(calls.append)
    watch.close()
    add(store, "cm1")
    assert watch.generation == 0
    assert calls == []


class _Failed(Exception):
    pass


def test_a_transaction_whose_connection_was_invalidated_rolls_back_quietly(
    store: Store, watch: TableWatch
) -> None:
    """A disconnect mid-transaction invalidates the connection; the rollback that follows
    must not fail in the watch (it did: PendingRollbackError from conn.info, hiding the
    outage from the caller's error handling) nor move the generation."""
    element_id = add(store, "cm1")
    before = watch.generation

    def disconnected_midway() -> None:
        with store.engine.begin() as conn:
            conn.execute(update(ELEMENTS).values(sync_state="failed"))
            conn.invalidate()
            raise _Failed

    with pytest.raises(_Failed):
        disconnected_midway()
    assert watch.generation == before
    StoreAccess(store.engine).elements.set_state(element_id, sync_state="running")
    assert watch.generation == before + 1  # the next transaction is seen as before
