"""The SNMP engine: persisted engine ID and boots, USM users, pysnmp set-up helpers."""

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

from agent.config import SnmpUser

STATE_FILE = "snmp-engine.json"
MAX_BOOTS = 2147483647

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


def load_engine_state(data_dir: Path, configured_id: str, pen: int) -> tuple[str, int]:
    """(engine id hex, boots) with boots incremented and saved before the engine starts."""
    path = data_dir / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        state = {}
    engine_id = configured_id.removeprefix("0x") or state.get("engine_id") or make_engine_id(pen)
    if engine_id != state.get("engine_id"):
        boots = 1  # a new engine ID starts counting again (RFC 3414 section 2.2)
    else:
        boots = min(int(state.get("boots", 0)) + 1, MAX_BOOTS)
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"engine_id": engine_id, "boots": boots}))
    os.replace(temporary, path)
    return engine_id, boots


def create_engine(engine_id: str, boots: int) -> Any:
    with warnings.catch_warnings():
        # pysnmp reads its own boots file (under the temp directory) without closing it;
        # the agent's boots replace that value just below.
        warnings.simplefilter("ignore", ResourceWarning)
        snmp_engine = pysnmp_engine.SnmpEngine(rfc1902.OctetString(hexValue=engine_id))
    builder = snmp_engine.get_mib_builder()
    (engine_boots,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots")
    engine_boots.syntax = engine_boots.syntax.clone(boots)
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
