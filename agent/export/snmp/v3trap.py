"""SNMPv3 traps (USM, HMAC-SHA-2 authentication, AES-128 privacy) on the fast path.

Measured need (bench/snmp.py): pysnmp's NotificationOriginator sends a few hundred v3
authPriv traps per second here. For a trap the agent is the authoritative engine, so no
discovery is involved and the message can be built directly: RFC 3412 message, RFC 3414
USM security parameters and HMAC, RFC 3826 AES-CFB-128 (the cipher itself from the
`cryptography` package, key localization from pysnmp). Informs stay with pysnmp, which
discovers the receiver's engine.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from pyasn1.type.univ import OctetString
from pysnmp.proto.secmod.rfc3414.localkey import password_to_key

from agent.config import SnmpUser
from agent.export.snmp import ber

# auth protocol -> (hash, length of the truncated HMAC in octets) per RFC 3414 / RFC 7860.
AUTH = {
    "SHA": (hashlib.sha1, 12),
    "SHA-224": (hashlib.sha224, 16),
    "SHA-256": (hashlib.sha256, 24),
    "SHA-384": (hashlib.sha384, 32),
    "SHA-512": (hashlib.sha512, 48),
}
MAX_SIZE = 65507
FLAG_AUTH, FLAG_PRIV = 0x01, 0x02


class V3TrapEncoder:
    """Builds authenticated (and encrypted) SNMPv3 Trap messages for one USM user."""

    def __init__(
        self,
        engine_id: bytes,
        boots: int,
        user: SnmpUser,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if user.auth_protocol == "none":
            raise ValueError(f"user {user.name}: the fast v3 trap path needs authentication")
        self.engine_id = engine_id
        self.boots = boots
        self.user = user.name.encode()
        self._clock = clock
        self._start = clock()
        digest, self._mac_length = AUTH[user.auth_protocol]
        self._digest = digest
        self._auth_key = bytes(
            password_to_key(
                user.auth_key.get_secret_value().encode(), OctetString(engine_id), digest
            )
        )
        self._priv_key: bytes | None = None
        if user.priv_protocol == "AES-128":
            localized = password_to_key(
                user.priv_key.get_secret_value().encode(), OctetString(engine_id), digest
            )
            self._priv_key = bytes(localized)[:16]
        # What every message repeats, encoded once.
        self._mac = hmac.new(self._auth_key, digestmod=digest)
        self._zero_mac = bytes(self._mac_length)
        self._aes = algorithms.AES(self._priv_key) if self._priv_key is not None else None
        self._boots_octets = boots.to_bytes(4, "big")
        flags = FLAG_AUTH | (FLAG_PRIV if self._priv_key is not None else 0)
        self._global_tail = ber.integer(MAX_SIZE) + ber.octets(bytes((flags,))) + ber.integer(3)
        self._usm_head = ber.octets(engine_id) + ber.integer(boots)
        self._usm_user = ber.octets(self.user) + bytes((ber.OCTET_STRING, self._mac_length))
        self._context = ber.octets(engine_id) + ber.octets(b"")
        self._salt = secrets.randbits(64)
        self._message_id = secrets.randbelow(1 << 30)
        self._request_id = secrets.randbelow(1 << 30)

    def engine_time(self) -> int:
        return int(self._clock() - self._start) & 0x7FFFFFFF

    def wrap(self, varbinds: bytes) -> bytes:
        """The authenticated (and encrypted) Trap message around ``varbinds``, the
        content of the VarBindList as agent.export.snmp.notify.VarbindEncoder builds it.

        Per message only the ids, engine time, salt, cipher and MAC are new: the rest was
        encoded in the constructor, and the HMAC starts from a copy of the keyed state.
        """
        self._message_id = (self._message_id + 1) & 0x7FFFFFFF
        self._request_id = (self._request_id + 1) & 0x7FFFFFFF
        pdu = _tlv(
            ber.TRAP_V2,
            ber.integer(self._request_id)
            + b"\x02\x01\x00\x02\x01\x00"  # error status, index
            + _tlv(ber.SEQUENCE, varbinds),
        )
        scoped = _tlv(ber.SEQUENCE, self._context + pdu)
        engine_time = self.engine_time()
        if self._aes is not None:
            self._salt = (self._salt + 1) & 0xFFFFFFFFFFFFFFFF
            salt = self._salt.to_bytes(8, "big")
            iv = self._boots_octets + engine_time.to_bytes(4, "big") + salt
            encryptor = Cipher(self._aes, CFB(iv)).encryptor()
            data = ber.octets(encryptor.update(scoped) + encryptor.finalize())
            salt_tlv = b"\x04\x08" + salt
        else:
            data = scoped
            salt_tlv = b"\x04\x00"
        head = b"\x02\x01\x03" + _tlv(
            ber.SEQUENCE, ber.integer(self._message_id) + self._global_tail
        )
        usm_prefix = self._usm_head + ber.integer(engine_time) + self._usm_user
        usm_size = len(usm_prefix) + self._mac_length + len(salt_tlv)
        usm_header = _header(ber.SEQUENCE, usm_size)
        security_header = _header(ber.OCTET_STRING, len(usm_header) + usm_size)
        size = len(head) + len(security_header) + len(usm_header) + usm_size + len(data)
        before = _header(ber.SEQUENCE, size) + head + security_header + usm_header + usm_prefix
        after = salt_tlv + data
        # RFC 3414 6.3.1: the MAC covers the whole message with its own field zeroed.
        mac = self._mac.copy()
        mac.update(before)
        mac.update(self._zero_mac)
        mac.update(after)
        return before + mac.digest()[: self._mac_length] + after


def _header(tag: int, size: int) -> bytes:
    if size < 0x80:
        return bytes((tag, size))
    return bytes((tag,)) + ber.length(size)


def _tlv(tag: int, payload: bytes) -> bytes:
    return _header(tag, len(payload)) + payload
