"""A lean BER codec for the SNMP messages the agent answers and sends itself.

Measured need (bench/snmp.py): building each response through pysnmp's pyasn1 objects
costs tens of microseconds per varbind, so a walk of a 10,000-row table is many times
slower than net-snmp's snmpd. This module encodes and decodes only what SNMPv1/v2c
GET / GETNEXT / GETBULK / responses and traps need (RFC 3416, RFC 1157, X.690 definite
lengths), byte-compatible with net-snmp. SNMPv3 stays with pysnmp.

Decoding reads bytes from anyone who can send a datagram, so every step is linear in its
input and bounded: an OID has at most 128 sub-identifiers of at most 32 bits each
(RFC 2578 section 7.1.3), an INTEGER at most 8 octets, lengths are definite and inside
the buffer. Anything else is a :class:`BerError`.
"""

from __future__ import annotations

from collections.abc import Sequence

# Universal and SNMP application tags (RFC 2578 / RFC 3416).
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42  # also Unsigned32
TIMETICKS = 0x43
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

# PDU tags.
GET = 0xA0
GET_NEXT = 0xA1
RESPONSE = 0xA2
SET = 0xA3
TRAP_V1 = 0xA4
GET_BULK = 0xA5
INFORM = 0xA6
TRAP_V2 = 0xA7
REPORT = 0xA8

# Error status values (RFC 3416 section 3).
NO_ERROR = 0
TOO_BIG = 1
NO_SUCH_NAME = 2
GEN_ERR = 5
NO_ACCESS = 6

# Decoding limits (RFC 2578 section 7.1.3 for OIDs).
MAX_SUBID = 0xFFFFFFFF
MAX_OID_ARCS = 128
# 32 bits take at most 5 base-128 octets; the first sub-identifier holds two arcs.
MAX_OID_OCTETS = 5 * (MAX_OID_ARCS - 1)
MAX_INTEGER_OCTETS = 8

NULL_VALUE = b"\x05\x00"
NO_SUCH_OBJECT_VALUE = b"\x80\x00"
NO_SUCH_INSTANCE_VALUE = b"\x81\x00"
END_OF_MIB_VIEW_VALUE = b"\x82\x00"


class BerError(ValueError):
    """The bytes are not the BER the agent expects."""


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 0x80:
        return bytes((tag, n)) + payload
    return bytes((tag,)) + length(n) + payload


def integer(value: int, tag: int = INTEGER) -> bytes:
    """Two's complement, minimal length (INTEGER, Integer32)."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def unsigned(value: int, tag: int) -> bytes:
    """Counter32, Gauge32 / Unsigned32, TimeTicks, Counter64: unsigned, with a leading
    zero octet when the top bit is set (X.690 encodes them as INTEGER)."""
    if value < 0:
        raise BerError(f"unsigned value {value} is negative")
    size = value.bit_length() // 8 + 1
    return tlv(tag, value.to_bytes(size, "big"))


def octets(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def subid(value: int) -> bytes:
    """One OID arc in base 128, high bit set on all but the last octet."""
    if value < 0x80:
        return bytes((value,))
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def oid_body(oid: Sequence[int]) -> bytes:
    """The content octets of an OBJECT IDENTIFIER."""
    if len(oid) < 2:
        raise BerError("an OID needs at least two arcs")
    head = subid(oid[0] * 40 + oid[1])
    return head + b"".join(subid(arc) for arc in oid[2:])


def oid(value: Sequence[int]) -> bytes:
    return tlv(OBJECT_IDENTIFIER, oid_body(value))


def decode_oid(body: bytes) -> tuple[int, ...]:
    """The arcs of an OID's content octets; linear in ``len(body)``.

    Raises:
        BerError: empty, ends inside a sub-identifier, a sub-identifier padded with a
            leading 0x80 octet (X.690 8.19.2) or above 2^32-1, more than 128 arcs.
    """
    if not body:
        raise BerError("empty OID")
    if len(body) > MAX_OID_OCTETS:
        # Cheap first: no valid OID is longer, however its arcs are split.
        raise BerError(f"OID of {len(body)} octets has more than {MAX_OID_ARCS} arcs")
    arcs: list[int] = []
    value = 0
    starting = True
    for byte in body:
        if starting and byte == 0x80:
            raise BerError("OID sub-identifier starts with a padding octet")
        # Checked as it grows: the value stays a small int, so each step is O(1).
        value = (value << 7) | (byte & 0x7F)
        if value > MAX_SUBID:
            raise BerError("OID sub-identifier above 2^32-1")
        starting = not byte & 0x80
        if starting:
            arcs.append(value)
            value = 0
    if not starting:
        raise BerError("OID ends inside an arc")
    if len(arcs) + 1 > MAX_OID_ARCS:
        raise BerError(f"OID has more than {MAX_OID_ARCS} arcs")
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return head + tuple(arcs[1:])


def header(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the TLV at ``pos``.

    Raises:
        BerError: truncated, a high tag number (SNMP has none), an indefinite or
            over-long length form, or content running past the end of ``buf``.
    """
    try:
        tag = buf[pos]
        first = buf[pos + 1]
    except IndexError:
        raise BerError("truncated TLV") from None
    if tag & 0x1F == 0x1F:
        raise BerError("high tag number form")
    pos += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise BerError("unsupported length form")
        if pos + count > len(buf):
            raise BerError("truncated length")
        size = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    end = pos + size
    if end > len(buf):
        raise BerError("TLV runs past the end of the message")
    return tag, pos, end


def decode_int(buf: bytes, start: int, end: int) -> int:
    if start == end:
        raise BerError("empty INTEGER")
    if end - start > MAX_INTEGER_OCTETS:
        raise BerError(f"INTEGER longer than {MAX_INTEGER_OCTETS} octets")
    return int.from_bytes(buf[start:end], "big", signed=True)


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))
