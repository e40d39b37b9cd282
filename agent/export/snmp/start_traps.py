"""coldStart / warmStart (RFC 3418) at each start: which one, and what it carries.

Which one. RFC 3418 (SNMPv2-MIB): coldStart means the entity "is reinitializing itself
and that its configuration may have been altered", warmStart that "its configuration is
unaltered". The agent sends coldStart on the first start with a store (no start recorded
in it) and when what decides what it serves and sends changed since the last start: the
[snmp] section, the site alarm types (the inventory it serves and the notifications'
type names), the host name (sysName) and the agent's version (an upgrade may serve other
objects). Anything else (API, sync, retention, syslog) leaves it warm. The store's
``meta`` table keeps a digest of those settings, never the settings: an HMAC-SHA256 keyed
with the store key (``secret.key``, kept outside the store), so communities and USM keys
cannot be guessed offline from a copy of the store. A changed key (``provsync keys
rotate``) therefore makes the next start cold, which errs on the safe side.

How it travels. The ``agent-started`` event that each start commits says which start it
was (``details.start``: ``"cold"`` or ``"warm"``) and which start it is: the process id,
the SNMP engine ID and the engine boots (RFC 3414 2.2.2: one more each time the engine
starts; the store keeps it, so no two starts of one engine share it). An SNMP target
delivering that event of *this* process sends the standard notification first, then the
provsyncEvent, through its own path (trap or inform, v2c or v3) and with its cursor, so
a target that was down at start gets it when it is back, in order. An agent-started event
of an earlier process, delivered late, goes as a provsyncEvent only: a coldStart long
after the fact would tell the receiver the agent restarted just now. The standard
notification carries sysUpTime.0 and snmpTrapOID.0 only (RFC 3418 gives it no OBJECTS)
and no provsync sequence number: it is not a log entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from agent import __version__
from agent.alarms.records import Notification, NotificationKind
from agent.config import Settings
from agent.errors import StoreError
from agent.export.snmp.notify import Syntax, Var
from agent.export.snmp.oids import SNMP_TRAP_OID, SYS_UPTIME
from agent.store.models import META
from agent.store.upsert import upsert

StartKind = Literal["cold", "warm"]

COLD_START = (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
"""SNMPv2-MIB::coldStart (snmpTraps.1, RFC 3418)."""
WARM_START = (1, 3, 6, 1, 6, 3, 1, 1, 5, 2)
"""SNMPv2-MIB::warmStart (snmpTraps.2, RFC 3418)."""
TRAP_OID_OF: Mapping[StartKind, tuple[int, ...]] = {"cold": COLD_START, "warm": WARM_START}

STARTED_EVENT = "agent-started"
DIGEST_KEY = "start-config-digest"
"""The ``meta`` row holding the digest of the settings of the last start."""


# ------------------------------------------------------------------ cold or warm
def _plain(value: Any) -> Any:
    """Settings as JSON-able data, secrets revealed (they only ever enter the HMAC)."""
    if isinstance(value, BaseModel):
        return _plain(dict(value))
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, PurePath):
        return str(value)
    return value


def config_digest(settings: Settings, host: str, key: bytes, version: str = __version__) -> str:
    """The keyed digest of what decides what the agent serves and sends over SNMP.

    Args:
        settings: the loaded settings ([snmp] and the site alarm types are used).
        host: the host name the agent runs as (sysName, the notifications' resource).
        key: the HMAC key (the store key's secret): the digest tells nothing without it.
        version: the agent's version.
    """
    document = {
        "version": version,
        "host": host,
        "snmp": _plain(settings.snmp),
        "alarm_types": _plain(settings.alarm_types),
    }
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    # A key of its own, derived from the store key: the store key's secret is not used
    # directly for a second purpose.
    own_key = hmac.new(key, b"provsync start-config digest", hashlib.sha256).digest()
    return hmac.new(own_key, data.encode(), hashlib.sha256).hexdigest()


def start_kind(previous: str | None, current: str) -> StartKind:
    """Cold on the first start with a store (``previous`` is None) or when the digest of
    the settings changed; warm when it is the same."""
    if previous is None or not hmac.compare_digest(previous, current):
        return "cold"
    return "warm"


def recorded_digest(engine: Engine) -> str | None:
    """The digest the last start recorded; None when no start recorded one.

    Raises:
        StoreError: the store could not be read.
    """
    try:
        with engine.connect() as conn:
            value = conn.execute(select(META.c.value).where(META.c.key == DIGEST_KEY)).scalar()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the last start's settings digest: {exc}") from exc
    return None if value is None else str(value)


def record_digest(engine: Engine, digest: str) -> None:
    """Keep this start's digest for the next start to compare with.

    Raises:
        StoreError: the store could not be written (the next start is then cold).
    """
    try:
        with engine.begin() as conn:
            upsert(conn, META, [{"key": DIGEST_KEY, "value": digest}], ["key"])
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record the settings digest: {exc}") from exc


# ------------------------------------------------------------------ which start
@dataclass(frozen=True, slots=True)
class ThisStart:
    """What tells this process's agent-started event from an earlier one's."""

    engine_id: str
    boots: int
    pid: int = 0

    @classmethod
    def of(cls, engine_id: str, boots: int) -> ThisStart:
        return cls(engine_id, boots, os.getpid())

    def details(self) -> dict[str, Any]:
        """The agent-started details that name this start."""
        return {"pid": self.pid, "snmp_engine_id": self.engine_id, "snmp_engine_boots": self.boots}

    def kind_of(self, note: Notification) -> StartKind | None:
        """The start kind if ``note`` is this start's agent-started event, else None."""
        if note.kind is not NotificationKind.EVENT or note.type_id != STARTED_EVENT:
            return None
        details = note.payload.get("details")
        if not isinstance(details, Mapping):
            return None
        if any(details.get(name) != value for name, value in self.details().items()):
            return None
        kind = details.get("start")
        if kind == "cold":
            return "cold"
        if kind == "warm":
            return "warm"
        return None


def start_vars(kind: StartKind, uptime: int) -> list[Var]:
    """The coldStart or warmStart varbinds: sysUpTime.0 and snmpTrapOID.0, nothing else."""
    return [
        Var(SYS_UPTIME, Syntax.TIMETICKS, uptime),
        Var(SNMP_TRAP_OID, Syntax.OID, TRAP_OID_OF[kind]),
    ]
