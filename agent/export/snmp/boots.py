"""snmpEngineBoots (and a generated engine ID) kept in the store.

A receiver of SNMPv3 traps remembers the highest boots it saw per engine ID and drops
messages with a lower one as outside the time window (RFC 3414 section 3.2.7). The data
directory alone cannot promise that boots never goes backwards: it is lost when the
agent is reinstalled or moved onto the same store. So each start takes the highest of
what the store and the data directory say, adds one and saves it in the store, in one
transaction, before the engine sends anything.

Rows live in the ``meta`` table (counters that must never go backwards). Its keys hold
64 characters and an engine ID up to 64 hex digits, so the boots key names the engine
ID by a digest of its octets.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError
from agent.store.models import META
from agent.store.upsert import upsert

# RFC 3414 section 2.2.2: at this value boots stays put (the engine ID must be changed).
MAX_BOOTS = 2147483647
BOOTS_PREFIX = "snmp-engine-boots:"
ENGINE_ID_KEY = "snmp-engine-id"


def boots_key(engine_id: str) -> str:
    """The meta key of an engine ID's boots (any case, with or without ``0x``)."""
    octets = bytes.fromhex(engine_id.removeprefix("0x"))
    return BOOTS_PREFIX + hashlib.sha256(octets).hexdigest()[:40]


def _read(conn: Connection, key: str, *, lock: bool = False) -> str | None:
    query = select(META.c.value).where(META.c.key == key)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()  # SQLite: the single writer is the lock
    value = conn.execute(query).scalar()
    return None if value is None else str(value)


def stored_engine_id(store: Engine) -> str:
    """The engine ID the agent generated for this store before ('' when none)."""
    try:
        with store.connect() as conn:
            return _read(conn, ENGINE_ID_KEY) or ""
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the SNMP engine ID from the store: {exc}") from exc


def next_boots(store: Engine, engine_id: str, *, at_least: int = 0, generated: bool = False) -> int:
    """Count one more boot of ``engine_id`` and return it.

    The result is one more than the highest of the store's value and ``at_least`` (what
    the data directory says), at most :data:`MAX_BOOTS`; it is committed before this
    returns. ``generated``: the engine ID was made by the agent, so the store keeps it
    too and a new data directory on this store gets the same one.

    Raises:
        StoreError: the store could not be read or written; the engine must not start
            with a boots value it could not keep.
    """
    key = boots_key(engine_id)
    try:
        with store.begin() as conn:
            stored = _read(conn, key, lock=True)
            current = max(int(stored) if stored and stored.isdigit() else 0, at_least, 0)
            boots = min(current + 1, MAX_BOOTS)
            rows = [{"key": key, "value": str(boots)}]
            if generated:
                rows.append({"key": ENGINE_ID_KEY, "value": engine_id})
            upsert(conn, META, rows, ["key"])
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot keep SNMP engine boots in the store: {exc}") from exc
    return boots
