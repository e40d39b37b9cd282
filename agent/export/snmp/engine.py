"""The SNMP engine: engine ID and boots (kept in the store and the data directory), USM
users, pysnmp set-up helpers."""

from __future__ import annotations

import json
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

from pysnmp.entity import config as pysnmp_config
from pysnmp.entity import engine as pysnmp_engine
from pysnmp.proto import rfc1902
from sqlalchemy import Engine

from agent.config import SnmpUser
from agent.export.snmp.boots import next_boots, stored_engine_id

STATE_FILE = "snmp-engine.json"

AUTH = {
    "none": pysnmp_config.USM_AUTH_NONE,
    "SHA": pysnmp_config.USM_AUTH_HMAC96_SHA,
    "SHA-224": pysnmp_config.USM_AUTH_HMAC128_SHA224,
    "SHA-256": pysnmp_config.USM_AUTH_HMAC192_SHA256,
    "SHA-384": pysnmp_config.USM_AUTH_HMAC256_SHA384,
    "SHA-512": pysnmp_config.USM_AUTH_HMAC384_SHA512,
}
PRIV = {
    "none": pysnmp_config.USM_PRIV_NONE,
    # AES-192/256 key extension differs between implementations; offered once tested.
    "AES-128": pysnmp_config.USM_PRIV_CFB128_AES,
}


def make_engine_id(pen: int) -> str:
    """RFC 3411 format 5 (octets): 0x80 | PEN, 0x05, 8 random octets."""
    head = (0x80000000 | pen).to_bytes(4, "big")
    return (head + b"\x05" + secrets.token_bytes(8)).hex()


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _boots_of(state: dict[str, Any]) -> int:
    value = state.get("boots", 0)
    return value if isinstance(value, int) and value > 0 else 0


def load_engine_state(
    data_dir: Path, configured_id: str, pen: int, store: Engine
) -> tuple[str, int]:
    """(engine id hex, boots) with boots incremented and saved before the engine starts.

    The engine ID is the configured one, else the one in the data directory, else the one
    generated for this store before, else a new one. Boots is counted in the store
    (:func:`agent.export.snmp.boots.next_boots`), so it never goes backwards for an
    engine ID even when the data directory is new; the data directory keeps a copy.

    Raises:
        StoreError: boots could not be kept in the store.
    """
    path = data_dir / STATE_FILE
    state = _read_state(path)
    file_id = str(state.get("engine_id") or "").lower()
    configured = configured_id.removeprefix("0x").lower()
    engine_id = configured or file_id or stored_engine_id(store)
    generated = not configured
    if not engine_id:
        engine_id = make_engine_id(pen)
    # A new engine ID starts counting again (RFC 3414 section 2.2): the data directory's
    # count only applies to its own engine ID.
    file_boots = _boots_of(state) if engine_id == file_id else 0
    boots = next_boots(store, engine_id, at_least=file_boots, generated=generated)
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"engine_id": engine_id, "boots": boots}))
    os.replace(temporary, path)
    return engine_id, boots


MAX_MESSAGE_SIZE = 8192
"""Octets: snmpEngineMaxMessageSize (RFC 3411), the largest message the agent receives
(larger datagrams are dropped unread, agent.export.snmp.screen) or sends (the fast path
cuts GETBULK answers to fit, pysnmp's v3 path is given the same figure)."""


def create_engine(engine_id: str, boots: int) -> Any:
    with warnings.catch_warnings():
        # pysnmp reads its own boots file (under the temp directory) without closing it;
        # the agent's boots replace that value just below.
        warnings.simplefilter("ignore", ResourceWarning)
        snmp_engine = pysnmp_engine.SnmpEngine(rfc1902.OctetString(hexValue=engine_id))
    builder = snmp_engine.get_mib_builder()
    engine_boots, max_size = builder.import_symbols(
        "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineMaxMessageSize"
    )
    engine_boots.syntax = engine_boots.syntax.clone(boots)
    # The same figure on every path (pysnmp's default is 4096).
    max_size.syntax = max_size.syntax.clone(MAX_MESSAGE_SIZE)
    return snmp_engine


def add_user(snmp_engine: Any, user: SnmpUser) -> None:
    pysnmp_config.add_v3_user(
        snmp_engine,
        user.name,
        AUTH[user.auth_protocol],
        user.auth_key.get_secret_value() or None,
        PRIV[user.priv_protocol],
        user.priv_key.get_secret_value() or None,
    )
