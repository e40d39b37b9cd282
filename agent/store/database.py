"""Opening the store: engine, SQLite pragmas, ownership lock and migrations.

Only one agent may own a store. For an SQLite file the lock is an ``flock`` on
``<file>.lock`` (released by the kernel when the process dies, even by SIGKILL); for a
server database it is a session-level advisory lock held on a dedicated connection,
watched, and backed by a fencing token checked at every commit (``ownership``).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config as AlembicConfig
from loguru import logger
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from agent.errors import StoreError, StoreLockedError
from agent.file_modes import DIR_MODE, create_private_file, tighten
from agent.store.models import META
from agent.store.ownership import OwnershipState, ServerOwnership
from agent.store.server_lock import keepalive_args

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, the driver provsync ships with."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def redact_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable store URL>"


def create_store_engine(
    url: str, *, sqlite_synchronous: str = "NORMAL", server_timeout: float = 3.0
) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StoreError(f"store URL is not valid: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            _private_sqlite_file(Path(database))
        # hide_parameters: a failed statement's message must not carry credentials.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the API and exporters read while the writer commits; NORMAL is
            # durable against a process crash (SIGKILL), which is what the agent promises.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    try:
        # Keepalives and a TCP user timeout: a server gone silent (not just gone) fails a
        # statement within about server_timeout instead of the kernel's 15 minutes.
        return create_engine(
            url,
            pool_size=8,
            max_overflow=8,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args=keepalive_args(server_timeout),
        )
    except Exception as exc:
        raise StoreError(f"cannot use store {redact_url(url)}: {exc}") from None


def _private_sqlite_file(database: Path) -> None:
    """The store file and its companions 0600 whatever the umask.

    SQLite gives the -wal and -shm files the mode of the database file, so creating that
    one empty with 0600 (an empty file is a valid new database) covers all three.
    """
    try:
        database.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        create_private_file(database)
        for suffix in ("", "-wal", "-shm", ".lock"):
            path = database.with_name(database.name + suffix)
            if tighten(path):
                logger.warning("store file {} was readable by others: now 0600", path)
    except OSError as exc:
        raise StoreError(f"cannot create store file {database}: {exc.strerror}") from None


class StoreLock:
    """Exclusive ownership of an SQLite store by one agent process (an ``flock``)."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self._fd: int | None = None

    def acquire(self) -> None:
        database = self._database
        lock_path = database.with_name(database.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"store {database} is in use by another provsync agent (pid {owner}); "
                "stop it first or use another data directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate store {redact_url(str(engine.url))}: {exc}") from exc


def store_identity(engine: Engine) -> str:
    """A UUID made when the store was created; tells a restored copy from another store."""
    with engine.begin() as conn:
        value = conn.execute(select(META.c.value).where(META.c.key == "store_id")).scalar()
        if value is None:
            value = str(uuid.uuid4())
            conn.execute(META.insert().values(key="store_id", value=value))
    return value


class Store:
    """An opened, locked and migrated store.

    Args:
        url: SQLAlchemy URL.
        sqlite_synchronous: SQLite's ``synchronous`` pragma.
        lock_check_interval: PostgreSQL: how often the owner checks its lock (and retries
            taking it back once lost).
        server_timeout: PostgreSQL: bound on connecting, on a statement of the lock
            connection and on unacknowledged data of every connection.
    """

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        lock_check_interval: float = 1.0,
        server_timeout: float = 3.0,
    ) -> None:
        self.url = normalize_url(url)
        self.engine = create_store_engine(
            self.url, sqlite_synchronous=sqlite_synchronous, server_timeout=server_timeout
        )
        self._file_lock: StoreLock | None = None
        self._ownership: ServerOwnership | None = None
        if self.is_sqlite:
            self._file_lock = StoreLock(Path(self.engine.url.database or "provsync.db"))
        else:
            self._ownership = ServerOwnership(
                self.engine,
                redact_url(self.url),
                interval=lock_check_interval,
                timeout=server_timeout,
            )
        self.identity = ""

    @property
    def is_sqlite(self) -> bool:
        return self.engine.url.get_backend_name() == "sqlite"

    @property
    def state(self) -> OwnershipState:
        """owned; fenced (lock lost, no commits until it is back); lost (another agent)."""
        if self._ownership is None:
            return OwnershipState.OWNED  # an flock cannot be lost while the process lives
        return self._ownership.state

    @property
    def fenced(self) -> bool:
        return self.state is not OwnershipState.OWNED

    def check_ownership(self) -> OwnershipState:
        """One round of the ownership watch, now (it also runs every lock_check_interval)."""
        if self._ownership is not None and self._ownership.watch is not None:
            return self._ownership.watch.check()
        return self.state

    def check_writable(self) -> None:
        """Raises: StoreFencedError: the lock is lost; no commit would be accepted now."""
        if self._ownership is not None:
            self._ownership.fence.check()

    def on_lost(self, listener: Callable[[str], None]) -> None:
        """``listener(message)``, from a watch thread, when another agent took the store."""
        if self._ownership is not None:
            self._ownership.on_lost = listener

    def open(self) -> None:
        try:
            self._acquire()
        except (SQLAlchemyError, psycopg.Error) as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open store {redact_url(self.url)}: {exc}") from None
        except OSError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot lock store {redact_url(self.url)}: {exc}") from None
        except StoreLockedError:
            self.engine.dispose()
            raise
        try:
            migrate(self.engine)
            if self._ownership is not None:
                try:
                    self._ownership.start()
                except psycopg.Error as exc:
                    raise StoreError(f"cannot claim store {redact_url(self.url)}: {exc}") from None
            self.identity = store_identity(self.engine)
        except BaseException:
            self.close()
            raise
        logger.info("store {} open (id {})", redact_url(self.url), self.identity)

    def _acquire(self) -> None:
        if self._file_lock is not None:
            self._file_lock.acquire()
        elif self._ownership is not None:
            self._ownership.acquire()

    def close(self) -> None:
        if self._ownership is not None:
            self._ownership.release()
        if self._file_lock is not None:
            self._file_lock.release()
        self.engine.dispose()
