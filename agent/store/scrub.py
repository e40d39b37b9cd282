"""Rewriting the store so that no old copy of a credential is left in its files.

After clear credentials were encrypted (agent.store.encryption.reseal), their old values
may still sit in free pages, WAL frames or dead row versions: :func:`scrub_store`
rewrites the store without them. The need is marked in ``meta`` in the same transaction
as the encryption, so a crash before the scrub redoes it at the next start.
"""

from __future__ import annotations

import time

from loguru import logger
from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from agent.store.models import CREDENTIALS, META

SCRUB_PENDING = "credentials_scrub_pending"


def scrub_store(engine: Engine) -> None:
    """Rewrite the store so no page, WAL frame or dead row version holds an old value.

    Needed once, after clear credentials were encrypted: migration 0005 copies the
    credentials table (``batch_alter_table``) and an SQLite built with secure_delete off
    (upstream's default) leaves the old pages, clear values and all, on the free list.
    VACUUM rebuilds the file without them; the WAL is then checkpointed and truncated. On
    PostgreSQL ``VACUUM FULL`` writes the table anew and drops the file holding the dead
    row versions (the server's own WAL archive is out of reach: see the docs).
    Both must run outside a transaction. The pending mark is cleared only after.
    """
    started = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        sqlite = conn.dialect.name == "sqlite"
        try:
            if sqlite:
                conn.exec_driver_sql("VACUUM")
            else:
                conn.exec_driver_sql(f"VACUUM FULL {CREDENTIALS.name}")
        except SQLAlchemyError as exc:
            # The values are encrypted already; the scrub is retried at the next start.
            logger.warning(
                "could not rewrite the store to drop old copies of the credentials "
                "(retried at the next start): {}",
                type(exc.orig).__name__ if isinstance(exc, DBAPIError) else type(exc).__name__,
            )
            return
    with engine.begin() as conn:
        conn.execute(delete(META).where(META.c.key == SCRUB_PENDING))
    if sqlite:
        with engine.connect() as conn:
            truncate_wal(conn)
    logger.info(
        "rewrote the store so it keeps no old copy of the credentials ({:.1f} s)",
        time.monotonic() - started,
    )


def mark_scrub_pending(conn: Connection) -> None:
    """In ``conn``'s transaction: a scrub is needed (cleared by :func:`scrub_store`)."""
    if conn.execute(select(META.c.key).where(META.c.key == SCRUB_PENDING)).first() is None:
        conn.execute(META.insert().values(key=SCRUB_PENDING, value="1"))


def scrub_pending(engine: Engine) -> bool:
    """A scrub was marked and has not run to its end yet."""
    with engine.connect() as conn:
        found = conn.execute(select(META.c.key).where(META.c.key == SCRUB_PENDING)).first()
    return found is not None


def secure_delete_of(conn: Connection) -> str:
    """The connection's secure_delete, in a form the pragma takes back (2 is FAST)."""
    value = conn.exec_driver_sql("PRAGMA secure_delete").scalar()
    return "FAST" if value == 2 else "ON" if value else "OFF"


def truncate_wal(conn: Connection) -> None:
    """Copy the WAL into the store file and cut it to zero bytes (old frames gone)."""
    row = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
    conn.commit()
    if row is not None and row[0]:
        logger.warning("the store WAL could not be truncated: a reader holds it open")
