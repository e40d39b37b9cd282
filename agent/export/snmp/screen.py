"""Screening datagrams at the SNMP port before anything expensive decodes them.

Anyone who can reach the port can send a datagram, and the v1/v2c community or the v3
user is only known part-way into it. So the listener walks the BER headers itself
(linear, bounded: agent.export.snmp.ber) and decides early: too big, not SNMP, an
unknown v3 user beyond the report budget, or a plaintext v3 PDU beyond the limits below is
dropped and counted
(agent.export.snmp.drops) before pysnmp's pyasn1 decoder sees a byte of it. v1/v2c
checks the community right after reading it (agent.export.snmp.fastpath).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container

from agent.export.snmp import ber
from agent.export.snmp.drops import Drop

MAX_MESSAGE_SIZE = 8192
"""Octets. SNMP requests are small (net-snmp's are well under 1,500); every engine must
accept 484 (RFC 3412 msgMaxSize). Larger datagrams are dropped unread."""
MAX_VARBINDS = 128
"""Variable bindings per request (the v3 GETBULK responder answers at most 128 too)."""
DISCOVERY_MAX_SIZE = 484
"""Octets. A v3 message with an empty user name is engine-ID discovery (RFC 3414 section
4): unauthenticated, answered with a report whatever it carries, and tiny when it comes
from a real manager (net-snmp's probe is under 100 octets)."""

DISCOVERY_RATE = 50.0
"""Discovery messages a second handed to pysnmp (a burst of as many is allowed). Each
costs pysnmp about a millisecond and is answered unauthenticated, so without a bound a
flood of tiny ones pins the agent; a real manager sends one per session."""

V3 = 3
USM = 3


class RateLimit:
    """A token bucket: :meth:`allow` is true at most ``rate`` times a second on average,
    ``burst`` times in a row.

    Args:
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def message_version(data: bytes) -> int | None:
    """0 (v1), 1 (v2c), 3 (v3) from the first INTEGER of the message; None if not SNMP."""
    try:
        tag, start, _ = ber.header(data, 0)
        if tag != ber.SEQUENCE:
            return None
        tag, v_start, v_end = ber.header(data, start)
        if tag != ber.INTEGER:
            return None
        return ber.decode_int(data, v_start, v_end)
    except ber.BerError:
        return None


def _expect(data: bytes, pos: int, tag: int, what: str) -> tuple[int, int]:
    found, start, end = ber.header(data, pos)
    if found != tag:
        raise ber.BerError(f"{what} is not the expected type")
    return start, end


def check_varbinds(data: bytes, start: int, end: int, *, values: bool) -> int:
    """Walks a VarBindList between ``start`` and ``end``; returns how many it holds.

    Stops past :data:`MAX_VARBINDS` (returning ``MAX_VARBINDS + 1``): the caller refuses
    the request without walking the rest.

    Args:
        values: check the values as well (primitive TLVs, OIDs within the limits),
            for input that a general BER decoder reads next.

    Raises:
        BerError: not a list of (OID, value) sequences within the limits.
    """
    count = 0
    position = start
    while position < end:
        count += 1
        if count > MAX_VARBINDS:
            return count
        vb_start, vb_end = _expect(data, position, ber.SEQUENCE, "varbind")
        if vb_end > end:
            raise ber.BerError("varbind runs past its list")
        o_start, o_end = _expect(data, vb_start, ber.OBJECT_IDENTIFIER, "varbind name")
        ber.decode_oid(data[o_start:o_end])
        if values:
            tag, v_start, v_end = ber.header(data, o_end)
            if tag & 0x20:
                raise ber.BerError("varbind value is constructed")
            if v_end != vb_end:
                raise ber.BerError("varbind holds more than a name and a value")
            if tag == ber.OBJECT_IDENTIFIER:
                ber.decode_oid(data[v_start:v_end])
        position = vb_end
    return count


def _check_pdu(data: bytes, start: int, end: int) -> int:
    """The varbind count of the PDU at ``start`` (any SNMPv2 PDU type)."""
    tag, p_start, p_end = ber.header(data, start)
    if not ber.GET <= tag <= ber.REPORT or p_end > end:
        raise ber.BerError("not an SNMP PDU")
    position = p_start
    for what in ("request-id", "error-status", "error-index"):
        i_start, position = _expect(data, position, ber.INTEGER, what)
        ber.decode_int(data, i_start, position)
    l_start, l_end = _expect(data, position, ber.SEQUENCE, "varbind list")
    if l_end > p_end:
        raise ber.BerError("varbind list runs past its PDU")
    return check_varbinds(data, l_start, l_end, values=True)


def screen_v3(
    data: bytes, users: Container[bytes], discovery: RateLimit | None = None
) -> tuple[Drop, str] | None:
    """Why a v3 message must be dropped (reason, detail), or None to hand it to pysnmp.

    Checks the headers (RFC 3412 section 6, RFC 3414 section 2.4), then the user name:
    empty (discovery) or unknown (answered with a report) pass for small messages only,
    at most as many as ``discovery`` allows; ``users`` always pass. A plaintext scoped PDU
    is walked with the limits; an encrypted one is left to pysnmp, which authenticates
    the message before it decrypts or decodes it.
    """
    try:
        user, s_end, end = _read_headers(data)
    except ber.BerError as exc:
        return Drop.V3_PARSE_ERROR, str(exc)
    if not user:
        if len(data) > DISCOVERY_MAX_SIZE:
            return Drop.V3_DISCOVERY_TOO_BIG, f"{len(data)} octets"
        if discovery is not None and not discovery.allow():
            return Drop.V3_DISCOVERY_RATE, f"more than {discovery.rate:g} a second"
    elif user not in users:
        # An unknown user is answered with the usmStatsUnknownUserNames report RFC 3414
        # requires (a manager with a mistyped name learns why), but only for small
        # messages and within the same budget as discovery: the report is unauthenticated
        # work anyone can ask for. The name is not logged: a mistyped one may be someone's
        # pass phrase.
        if len(data) > DISCOVERY_MAX_SIZE:
            return Drop.V3_UNKNOWN_USER, f"{len(data)} octets"
        if discovery is not None and not discovery.allow():
            return Drop.V3_UNKNOWN_USER, f"more than {discovery.rate:g} reports a second"
    try:
        tag, d_start, d_end = ber.header(data, s_end)
        if d_end > end:
            raise ber.BerError("msgData runs past the message")
        if tag == ber.SEQUENCE:
            _, position = _expect(data, d_start, ber.OCTET_STRING, "contextEngineID")
            _, position = _expect(data, position, ber.OCTET_STRING, "contextName")
            if _check_pdu(data, position, d_end) > MAX_VARBINDS:
                return Drop.V3_TOO_MANY_VARBINDS, f"more than {MAX_VARBINDS}"
        elif tag != ber.OCTET_STRING:
            raise ber.BerError("msgData is neither a scoped PDU nor encrypted")
    except ber.BerError as exc:
        return Drop.V3_PARSE_ERROR, str(exc)
    return None


def _read_headers(data: bytes) -> tuple[bytes, int, int]:
    """(msgUserName, end of msgSecurityParameters, end of the message)."""
    _, start, end = ber.header(data, 0)
    _, position = _expect(data, start, ber.INTEGER, "msgVersion")
    g_start, g_end = _expect(data, position, ber.SEQUENCE, "msgGlobalData")
    position = g_start
    for what in ("msgID", "msgMaxSize"):
        i_start, position = _expect(data, position, ber.INTEGER, what)
        ber.decode_int(data, i_start, position)
    _, position = _expect(data, position, ber.OCTET_STRING, "msgFlags")
    m_start, m_end = _expect(data, position, ber.INTEGER, "msgSecurityModel")
    if m_end > g_end or ber.decode_int(data, m_start, m_end) != USM:
        raise ber.BerError("security model is not USM")
    s_start, s_end = _expect(data, g_end, ber.OCTET_STRING, "msgSecurityParameters")
    u_start, u_end = _expect(data, s_start, ber.SEQUENCE, "UsmSecurityParameters")
    if u_end > s_end:
        raise ber.BerError("USM parameters run past their OCTET STRING")
    _, position = _expect(data, u_start, ber.OCTET_STRING, "msgAuthoritativeEngineID")
    for what in ("msgAuthoritativeEngineBoots", "msgAuthoritativeEngineTime"):
        i_start, position = _expect(data, position, ber.INTEGER, what)
        ber.decode_int(data, i_start, position)
    n_start, n_end = _expect(data, position, ber.OCTET_STRING, "msgUserName")
    if n_end > u_end:
        raise ber.BerError("msgUserName runs past the USM parameters")
    return data[n_start:n_end], s_end, end
