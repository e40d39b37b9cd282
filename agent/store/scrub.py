"""Rewriting the store so that no old copy of a credential is left in its files.

After clear credentials were encrypted (agent.store.encryption.reseal), their old values
may still sit in free pages, WAL frames or dead row versions: :func:`scrub_store`
rewrites the store without them. The need is marked in ``meta`` in the same transaction
as the encryption, so a crash before the scrub redoes it at the next start.
"""

from __future__ import annotations

import re
import time

import psycopg
from loguru import logger
from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from agent.store.models import CREDENTIALS, META

SCRUB_PENDING = "credentials_scrub_pending"
VACUUM_TRIES = 8
"""Rewrites of the credentials table while a transaction still sees an old row (about
9 s in all with the doubling wait between them)."""
_KEPT = re.compile(r"(\d+) dead row versions cannot be removed yet")
pause = time.sleep
"""The wait between rewrites (a test ends the other transaction there)."""
_REPORT = re.compile(r"found \d+ removable, \d+ nonremovable row versions")


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
            elif not _vacuum_full(conn, CREDENTIALS.name):
                logger.warning(
                    "could not rewrite the store to drop old copies of the credentials: "
                    "another transaction still sees them (retried at the next start)"
                )
                return
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


def _vacuum_full(conn: Connection, table: str) -> bool:
    """``VACUUM FULL`` of ``table`` until it copied no dead row version; False if one was
    still copied after the last try.

    VACUUM FULL keeps a dead row version that a running transaction of the database may
    still see (an autovacuum's ANALYZE, another agent's read): the new file would hold
    the old value again. The server says so in the VERBOSE report ("N dead row versions
    cannot be removed yet"), so the rewrite is repeated until it could drop them.
    """
    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        # Another driver (a postgresql+psycopg2 URL): no notices to read, one rewrite.
        conn.exec_driver_sql(f"VACUUM FULL {table}")
        return True
    kept: list[int] = []
    reports: list[str] = []

    def notice(diagnostic: psycopg.errors.Diagnostic) -> None:
        reports.append(diagnostic.message_primary or "")
        found = _KEPT.search(diagnostic.message_detail or "")
        if found:
            kept.append(int(found.group(1)))

    driver.add_notice_handler(notice)
    try:
        for attempt in range(VACUUM_TRIES):
            kept.clear()
            reports.clear()
            conn.exec_driver_sql(f"VACUUM (FULL, VERBOSE) {table}")
            if not any(_REPORT.search(line) for line in reports):
                # The server's messages are not in English (lc_messages): what it kept
                # cannot be read; the one rewrite done is all that can be said.
                logger.warning("the server's VACUUM report could not be read (lc_messages)")
                return True
            if not any(kept):
                return True
            if attempt + 1 < VACUUM_TRIES:
                pause(min(0.1 * 2**attempt, 2.0))
        return False
    finally:
        driver.remove_notice_handler(notice)


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
