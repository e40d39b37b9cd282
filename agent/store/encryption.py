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
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from loguru import logger
from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from agent.errors import StoreKeyError
from agent.file_modes import FILE_MODE, tighten
from agent.store.models import CREDENTIALS, ELEMENTS, META

_KEY_LINE = re.compile(r"^[A-Za-z0-9_-]{43}=$")


class StoreKey:
    """One Fernet key; its repr never shows the key."""

    __slots__ = ("_fernet", "_secret", "id")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._fernet = Fernet(secret)
        self.id = hashlib.sha256(secret).hexdigest()[:16]

    @classmethod
    def generate(cls) -> StoreKey:
        return cls(Fernet.generate_key())

    def __repr__(self) -> str:
        return f"StoreKey(id={self.id})"

    def line(self) -> str:
        return self._secret.decode()

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()


class KeyRing:
    """The keys of the key file: the primary encrypts, every one decrypts what it sealed."""

    def __init__(self, keys: Sequence[StoreKey], source: Path) -> None:
        if not keys:
            raise StoreKeyError(f"key file {source} holds no key")
        self.keys = tuple(keys)
        self.source = source
        self._by_id = {key.id: key for key in self.keys}

    @property
    def primary(self) -> StoreKey:
        return self.keys[0]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def seal(self, value: str) -> str:
        return self.primary.encrypt(value)

    def unseal(self, token: str, key_id: str) -> str:
        """The clear value of ``token``, sealed with key ``key_id`` ("" for a clear value).

        Raises:
            StoreKeyError: the key file does not hold that key, or the value does not
                decrypt with it (damaged).
        """
        if not key_id:
            return token
        key = self._by_id.get(key_id)
        if key is None:
            raise StoreKeyError(
                f"key file {self.source} does not hold key {key_id}, which encrypted "
                "stored credentials (wrong key file?)"
            )
        try:
            return key.decrypt(token)
        except InvalidToken:
            raise StoreKeyError(
                f"a stored credential does not decrypt with key {key_id} of {self.source}"
            ) from None


@dataclass(frozen=True)
class Rotation:
    new_key: str
    dropped: tuple[str, ...]
    resealed: int


# ------------------------------------------------------------------ the key file
def read_key_file(path: Path) -> KeyRing | None:
    """The key ring in ``path``; None when there is no such file.

    Raises:
        StoreKeyError: unreadable, or a line that is not a key (named by number, never shown).
    """
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreKeyError(f"cannot read key file {path}: {_reason(exc)}") from None
    if tighten(path):
        logger.warning("key file {} was readable by others: now 0600", path)
    keys: list[StoreKey] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _KEY_LINE.match(line):
            raise StoreKeyError(
                f"key file {path} line {number}: not a key (44 characters of URL-safe base64)"
            )
        keys.append(StoreKey(line.encode()))
    return KeyRing(keys, path)


def write_key_file(path: Path, keys: Sequence[StoreKey]) -> None:
    """Replace ``path`` atomically with ``keys`` (primary first), mode 0600.

    Raises:
        StoreKeyError: the file cannot be written.
    """
    body = (
        "# provsync store key: keep it secret and back it up apart from the store.\n"
        "# The first key encrypts; the others only decrypt. `provsync keys rotate`.\n"
        + "".join(key.line() + "\n" for key in keys)
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, body.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StoreKeyError(f"cannot write key file {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__


# ------------------------------------------------------------------ the store's credentials
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
        previous = _secure_delete(conn) if sqlite else None
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
            conn.commit()
        try:
            count, clear = _reseal_rows(conn, ring, primary)
            if clear:
                # Committed with the rows: a crash before the scrub redoes it next start.
                _mark_scrub_pending(conn)
            conn.commit()
        finally:
            conn.rollback()  # nothing left after the commit; undoes a failed reseal
            if previous is not None:
                conn.exec_driver_sql(f"PRAGMA secure_delete={previous}")
                conn.commit()
        if sqlite and count:
            _truncate_wal(conn)
    if _scrub_pending(engine):
        scrub_store(engine)
    return count


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
            _truncate_wal(conn)
    logger.info(
        "rewrote the store so it keeps no old copy of the credentials ({:.1f} s)",
        time.monotonic() - started,
    )


SCRUB_PENDING = "credentials_scrub_pending"


def _mark_scrub_pending(conn: Connection) -> None:
    if conn.execute(select(META.c.key).where(META.c.key == SCRUB_PENDING)).first() is None:
        conn.execute(META.insert().values(key=SCRUB_PENDING, value="1"))


def _scrub_pending(engine: Engine) -> bool:
    with engine.connect() as conn:
        found = conn.execute(select(META.c.key).where(META.c.key == SCRUB_PENDING)).first()
    return found is not None


def _secure_delete(conn: Connection) -> str:
    """The connection's secure_delete, in a form the pragma takes back (2 is FAST)."""
    value = conn.exec_driver_sql("PRAGMA secure_delete").scalar()
    return "FAST" if value == 2 else "ON" if value else "OFF"


def _truncate_wal(conn: Connection) -> None:
    """Copy the WAL into the store file and cut it to zero bytes (old frames gone)."""
    row = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
    conn.commit()
    if row is not None and row[0]:
        logger.warning("the store WAL could not be truncated: a reader holds it open")


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
