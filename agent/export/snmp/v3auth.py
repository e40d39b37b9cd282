"""Checking an SNMPv3 message's digest before pysnmp decodes it.

pysnmp's message processing decodes the whole message (pyasn1, including a plaintext
scoped PDU) before USM authenticates it, and user names are not secret: without this
check anyone could make the agent decode a 128-varbind PDU per datagram in a known
user's name. The screen (agent.export.snmp.screen) therefore verifies the HMAC itself,
with pysnmp's own authentication services: the RFC 3414 master key is hashed once per
user from the configured pass phrase, and localized per engine ID (one short hash,
cached for a few engine IDs).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyasn1.type import univ
from pysnmp.error import PySnmpError
from pysnmp.proto import error as proto_error
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel

from agent.config import SnmpUser
from agent.export.snmp.engine import AUTH

FLAG_AUTH = 0x01
FLAG_PRIV = 0x02
FLAG_REPORTABLE = 0x04
LEVEL_FLAGS = {"noAuthNoPriv": 0, "authNoPriv": FLAG_AUTH, "authPriv": FLAG_AUTH | FLAG_PRIV}
"""msgFlags security bits (RFC 3412 6.4) for each configured level."""

LOCALIZED_KEYS = 16
"""Engine IDs whose localized key is kept per user: the agent's own, and on the inform
side the receivers' (an attacker choosing engine IDs only costs a hash each)."""


class Authenticator:
    """One user's authentication: verifies a message's digest (RFC 3414 6.3.2 / RFC 7860).

    Args:
        protocol: the configured auth protocol name (agent.export.snmp.engine.AUTH).
        pass_phrase: the configured auth key.
    """

    def __init__(self, protocol: str, pass_phrase: bytes) -> None:
        self._service: Any = SnmpUSMSecurityModel.AUTH_SERVICES[AUTH[protocol]]
        # The RFC 3414 A.2 pass-phrase hash is a megabyte of hashing: once, at start.
        self._master: Any = self._service.hash_passphrase(pass_phrase)
        self._localized: OrderedDict[bytes, Any] = OrderedDict()

    def _key(self, engine_id: bytes) -> Any:
        key = self._localized.get(engine_id)
        if key is None:
            key = self._service.localize_key(self._master, univ.OctetString(engine_id))
            self._localized[engine_id] = key
            if len(self._localized) > LOCALIZED_KEYS:
                self._localized.popitem(last=False)
        else:
            self._localized.move_to_end(engine_id)
        return key

    def verify(self, engine_id: bytes, auth_parameters: bytes, message: bytes) -> bool:
        """True when ``auth_parameters`` is the digest of ``message`` under this user's
        key localized to ``engine_id``."""
        try:
            self._service.authenticate_incoming_message(
                self._key(engine_id), univ.OctetString(auth_parameters), message
            )
        except (proto_error.StatusInformation, PySnmpError):
            return False
        return True


@dataclass(frozen=True)
class KnownUser:
    """What the screen knows of a configured USM user."""

    level: int
    """The msgFlags security bits of its configured level (:data:`LEVEL_FLAGS`)."""
    auth: Authenticator | None


def known_users(users: Iterable[SnmpUser]) -> Mapping[bytes, KnownUser]:
    """The configured users by name, with their authenticators."""
    known: dict[bytes, KnownUser] = {}
    for user in users:
        auth = None
        if user.auth_protocol != "none":
            auth = Authenticator(user.auth_protocol, user.auth_key.get_secret_value().encode())
        known[user.name.encode()] = KnownUser(LEVEL_FLAGS[user.level], auth)
    return known
