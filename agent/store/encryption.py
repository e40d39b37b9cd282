"""Element credentials encrypted at rest, with a key kept outside the store.

The key file (``[store] key_file``, default ``<data_dir>/secret.key``, mode 0600) holds
Fernet keys (AES-128-CBC with HMAC-SHA256, from ``cryptography``), one per line, the
primary first: it encrypts; the others only decrypt. Each stored credential carries the
id of the key that sealed it (``element_credentials.key_id``: the first 16 hex digits of
the key's SHA-256; empty for a row still in the clear), so a missing or wrong key file is
told at start, before anything is read or written, and rotation knows what is left.

Rotation never loses a credential, wherever it stops: the new key is added to the key
file first (as primary, the old ones kept), then every credential is re-encrypted in one
transaction, and only then are the old keys dropped from the file. Each file write is
atomic (a temporary file, fsync, rename).

The keys and their file are agent.store.key_file; the rewrite of the store that drops
old copies of clear values is agent.store.scrub. This module holds what ties them to
the stored credentials: check, reseal, open at start, rotate, reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from sqlalchemy import Connection, Engine, delete, select, update

from agent.errors import StoreKeyError
from agent.store.key_file import KeyRing, StoreKey, read_key_file, write_key_file
from agent.store.models import CREDENTIALS, ELEMENTS
from agent.store.scrub import (
    SCRUB_PENDING,
    mark_scrub_pending,
    scrub_pending,
    scrub_store,
    secure_delete_of,
    truncate_wal,
)


@dataclass(frozen=True)
class Rotation:
    new_key: str
    dropped: tuple[str, ...]
    resealed: int


def sealed_key_ids(engine: Engine) -> dict[str, list[str]]:
    """Key id -> names of the elements whose credentials it sealed (clear rows left out)."""
    query = (
        select(CREDENTIALS.c.key_id, ELEMENTS.c.name)
        .join(ELEMENTS, ELEMENTS.c.id == CREDENTIALS.c.element_id, isouter=True)
        .where(CREDENTIALS.c.key_id != "")
    )
    found: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for key_id, name in conn.execute(query):
            found.setdefault(key_id, []).append(name or "?")
    return found


def check_ring(engine: Engine, ring: KeyRing) -> None:
    """Every stored credential decrypts with ``ring``.

    Raises:
        StoreKeyError: naming the missing key and the elements whose credentials need it.
    """
    for key_id, names in sealed_key_ids(engine).items():
        if key_id not in ring.ids:
            raise StoreKeyError(
                f"key file {ring.source} does not hold key {key_id}, which encrypted the "
                f"credentials of {', '.join(sorted(names))} (wrong key file? if that key is "
                "lost: provsync keys reset)"
            )
    with engine.connect() as conn:
        for row in conn.execute(select(CREDENTIALS)):
            ring.unseal(row.username, row.key_id)
            ring.unseal(row.password, row.key_id)


def reseal(engine: Engine, ring: KeyRing) -> int:
    """Encrypt with the primary key every credential not sealed by it (clear rows too).

    One transaction: a crash leaves every row as it was or every row resealed. On SQLite
    the replaced values are zeroed in their pages (secure_delete, on for this transaction
    only: the connection's own setting comes back after). When clear values were
    encrypted, the store is then scrubbed of every old copy (:func:`scrub_store`).

    Returns:
        How many credentials were (re-)encrypted.
    """
    primary = ring.primary.id
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        previous = secure_delete_of(conn) if sqlite else None
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
            conn.commit()
        try:
            count, clear = _reseal_rows(conn, ring, primary)
            if clear:
                # Committed with the rows: a crash before the scrub redoes it next start.
                mark_scrub_pending(conn)
            conn.commit()
        finally:
            conn.rollback()  # nothing left after the commit; undoes a failed reseal
            if previous is not None:
                conn.exec_driver_sql(f"PRAGMA secure_delete={previous}")
                conn.commit()
        if sqlite and count:
            truncate_wal(conn)
    if scrub_pending(engine):
        scrub_store(engine)
    return count


def _reseal_rows(conn: Connection, ring: KeyRing, primary: str) -> tuple[int, int]:
    """(rows resealed, how many of them were in the clear)."""
    rows = list(conn.execute(select(CREDENTIALS).where(CREDENTIALS.c.key_id != primary)))
    for row in rows:
        conn.execute(
            update(CREDENTIALS)
            .where(CREDENTIALS.c.element_id == row.element_id)
            .values(
                username=ring.seal(ring.unseal(row.username, row.key_id)),
                password=ring.seal(ring.unseal(row.password, row.key_id)),
                key_id=primary,
            )
        )
    return len(rows), sum(1 for row in rows if not row.key_id)


def open_key_ring(path: Path, engine: Engine) -> KeyRing:
    """The agent's key ring at start: made on first start, checked, clear rows encrypted.

    Raises:
        StoreKeyError: the key file is missing while the store holds encrypted
            credentials, or it does not decrypt them; nothing is changed then.
    """
    ring = read_key_file(path)
    if ring is None:
        sealed = sealed_key_ids(engine)
        if sealed:
            names = sorted(n for names in sealed.values() for n in names)
            raise StoreKeyError(
                f"key file {path} does not exist, but the store holds credentials encrypted "
                f"with key {', '.join(sorted(sealed))} ({', '.join(names)}): restore the key "
                "file, point [store] key_file at it, or forget them (provsync keys reset)"
            )
        ring = KeyRing([StoreKey.generate()], path)
        write_key_file(path, ring.keys)
        logger.info("generated the store key {} in {}", ring.primary.id, path)
    check_ring(engine, ring)
    count = reseal(engine, ring)
    if count:
        logger.info("encrypted {} element credential(s) with store key {}", count, ring.primary.id)
    return ring


def rotate_key(path: Path, engine: Engine) -> Rotation:
    """Re-encrypt every credential with a new key and drop the old ones from the key file.

    The caller owns the store (holds its lock): nothing else writes credentials meanwhile.

    Raises:
        StoreKeyError: no key file, or it does not decrypt the store.
    """
    ring = read_key_file(path)
    if ring is None:
        raise StoreKeyError(f"key file {path} does not exist: nothing to rotate")
    check_ring(engine, ring)
    new = StoreKey.generate()
    # New primary first, old keys kept: a crash from here on still decrypts every row.
    write_key_file(path, [new, *ring.keys])
    count = reseal(engine, KeyRing([new, *ring.keys], path))
    write_key_file(path, [new])
    logger.info("store key rotated to {}; {} credential(s) re-encrypted", new.id, count)
    return Rotation(new.id, tuple(key.id for key in ring.keys), count)


def reset_key(path: Path, engine: Engine) -> list[str]:
    """The key is lost for good: forget the credentials no key of ``path`` decrypts.

    Makes a new key file when there is none. The caller owns the store (holds its lock).

    Returns:
        The names of the elements whose credentials were forgotten (to be set again).
    """
    ring = read_key_file(path)
    if ring is None:
        ring = KeyRing([StoreKey.generate()], path)
        write_key_file(path, ring.keys)
        logger.info("generated the store key {} in {}", ring.primary.id, path)
    lost = {
        key_id: names for key_id, names in sealed_key_ids(engine).items() if key_id not in ring.ids
    }
    if lost:
        with engine.begin() as conn:
            conn.execute(delete(CREDENTIALS).where(CREDENTIALS.c.key_id.in_(sorted(lost))))
    names = sorted(name for names in lost.values() for name in names)
    if names:
        logger.warning(
            "forgot the credentials of {} (encrypted with lost key {})",
            ", ".join(names),
            ", ".join(sorted(lost)),
        )
    return names


# The key file's names are part of this module's face: the agent and the tests import
# KeyRing and StoreKey from here; SCRUB_PENDING and scrub_store are named by migration
# 0005; StoreKeyError is what every function here raises.
__all__ = [
    "SCRUB_PENDING",
    "KeyRing",
    "Rotation",
    "StoreKey",
    "StoreKeyError",
    "check_ring",
    "open_key_ring",
    "read_key_file",
    "reseal",
    "reset_key",
    "rotate_key",
    "scrub_store",
    "sealed_key_ids",
    "write_key_file",
]
