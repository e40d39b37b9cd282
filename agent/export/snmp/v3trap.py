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
from collections.abc import Callable, Sequence

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from pyasn1.type.univ import OctetString
from pysnmp.proto.secmod.rfc3414.localkey import password_to_key

from agent.config import SnmpUser
from agent.export.snmp import ber
from agent.export.snmp.notify import Var

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
        self._salt = secrets.randbits(64)
        self._message_id = secrets.randbelow(1 << 30)
        self._request_id = secrets.randbelow(1 << 30)

    def engine_time(self) -> int:
        return int(self._clock() - self._start) & 0x7FFFFFFF

    def encode(self, varbinds: Sequence[Var]) -> bytes:
        self._message_id = (self._message_id + 1) & 0x7FFFFFFF
        self._request_id = (self._request_id + 1) & 0x7FFFFFFF
        pdu = ber.tlv(
            ber.TRAP_V2,
            ber.integer(self._request_id) + ber.integer(0) + ber.integer(0)
            + ber.tlv(ber.SEQUENCE, b"".join(v.ber() for v in varbinds)),
        )  # fmt: skip
        scoped = ber.sequence(ber.octets(self.engine_id), ber.octets(b""), pdu)
        engine_time = self.engine_time()
        flags = FLAG_AUTH
        if self._priv_key is not None:
            flags |= FLAG_PRIV
            self._salt = (self._salt + 1) & 0xFFFFFFFFFFFFFFFF
            salt = self._salt.to_bytes(8, "big")
            iv = self.boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
            encryptor = Cipher(algorithms.AES(self._priv_key), CFB(iv)).encryptor()
            data = ber.octets(encryptor.update(scoped) + encryptor.finalize())
        else:
            salt = b""
            data = scoped
        usm_prefix = (
            ber.octets(self.engine_id) + ber.integer(self.boots) + ber.integer(engine_time)
            + ber.octets(self.user) + bytes((ber.OCTET_STRING, self._mac_length))
        )  # fmt: skip
        usm_body = usm_prefix + bytes(self._mac_length) + ber.octets(salt)
        usm = ber.tlv(ber.SEQUENCE, usm_body)
        header = ber.sequence(
            ber.integer(self._message_id), ber.integer(MAX_SIZE), ber.octets(bytes((flags,))),
            ber.integer(3),
        )  # fmt: skip
        head = ber.integer(3) + header
        security = ber.octets(usm)
        whole = ber.tlv(ber.SEQUENCE, head + security + data)
        # Where the zeroed MAC sits: after the outer header, version, global data, the
        # OCTET STRING and SEQUENCE headers around USM, and the fields before it.
        outer = len(whole) - len(head) - len(security) - len(data)
        usm_headers = (len(security) - len(usm)) + (len(usm) - len(usm_body))
        at = outer + len(head) + usm_headers + len(usm_prefix)
        mac = hmac.new(self._auth_key, whole, self._digest).digest()[: self._mac_length]
        return whole[:at] + mac + whole[at + self._mac_length :]
