"""Screening datagrams at the SNMP port before anything expensive decodes them.

Anyone who can reach the port can send a datagram, and the v1/v2c community or the v3
user is only known part-way into it. So the listener walks the BER headers itself
(linear, bounded: agent.export.snmp.ber) and decides early: too big, not SNMP, an
unknown v3 user beyond the report budget (agent.export.snmp.rate_limits), or a plaintext
v3 PDU beyond the limits below is dropped and counted (agent.export.snmp.drops) before
pysnmp's pyasn1 decoder sees a byte of it. v1/v2c checks the community right after
reading it (agent.export.snmp.fastpath).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.export.snmp import ber, engine
from agent.export.snmp.drops import Drop
from agent.export.snmp.rate_limits import SenderBudget
from agent.export.snmp.v3auth import FLAG_AUTH, FLAG_PRIV, KnownUser

MAX_MESSAGE_SIZE = engine.MAX_MESSAGE_SIZE
"""Octets. SNMP requests are small (net-snmp's are well under 1,500); every engine must
accept 484 (RFC 3412 msgMaxSize). Larger datagrams are dropped unread."""
MAX_VARBINDS = 128
"""Variable bindings per request (the v3 GETBULK responder answers at most 128 too)."""
DISCOVERY_MAX_SIZE = 484
"""Octets. A v3 message with an empty user name is engine-ID discovery (RFC 3414 section
4): unauthenticated, answered with a report whatever it carries, and tiny when it comes
from a real manager (net-snmp's probe is under 100 octets)."""

V3 = 3
USM = 3


class Refused(ber.BerError):
    """Well-formed BER, but a message RFC 3412 7.2 discards with a counter of its own."""

    def __init__(self, message: str, reason: Drop) -> None:
        super().__init__(message)
        self.reason = reason


def _reason(exc: ber.BerError) -> Drop:
    return exc.reason if isinstance(exc, Refused) else Drop.V3_PARSE_ERROR


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


@dataclass(frozen=True)
class Headers:
    """What the screen reads of a v3 message before deciding (RFC 3412 6, RFC 3414 2.4)."""

    flags: int
    engine_id: bytes
    user: bytes
    auth_parameters: bytes
    scoped_start: int
    """Where msgData (a scoped PDU, or its encryption) starts."""
    end: int


def _unauthenticated(
    data: bytes, budget: SenderBudget | None, sender: str, reason: Drop, what: str
) -> tuple[Drop, str] | None:
    """A message nothing authenticates, answered by pysnmp with an RFC 3414 report only
    when it is small and within the sender's and the global budget."""
    if len(data) > DISCOVERY_MAX_SIZE:
        return reason, f"{len(data)} octets"
    if budget is not None:
        refused = budget.refuse(sender)
        if refused:
            return reason, f"{what}: {refused}"
    return None


def screen_v3(
    data: bytes,
    users: Mapping[bytes, KnownUser],
    budget: SenderBudget | None = None,
    sender: str = "",
    *,
    engine_id: bytes = b"",
) -> tuple[Drop, str] | None:
    """Why a v3 request must be dropped (reason, detail), or None to hand it to pysnmp.

    Checks the headers (RFC 3412 section 6, RFC 3414 section 2.4), then who sent it. Only
    a message whose digest verifies (agent.export.snmp.v3auth), at its user's configured
    level, for the agent's ``engine_id``, goes on unconditionally (and a noAuthNoPriv user's
    when allow_noauth let it be configured). Everything else -- discovery (empty user),
    an unknown user, another engine ID, a level other than the user's, a wrong digest --
    is unauthenticated work: it passes for small messages within ``budget`` only, so that
    pysnmp answers the RFC 3414 report a real manager needs (unknownEngineIDs,
    unknownUserNames, unsupportedSecLevels, wrongDigests); past that it is dropped. A
    plaintext scoped PDU is walked with the limits.
    """
    try:
        head = _read_headers(data)
    except ber.BerError as exc:
        return _reason(exc), str(exc)
    known = users.get(head.user) if head.user else None
    level = head.flags & (FLAG_AUTH | FLAG_PRIV)
    refused: tuple[Drop, str] | None = None
    if not head.user:
        if len(data) > DISCOVERY_MAX_SIZE:
            return Drop.V3_DISCOVERY_TOO_BIG, f"{len(data)} octets"
        refused = _unauthenticated(data, budget, sender, Drop.V3_DISCOVERY_RATE, "discovery")
    elif known is None:
        # The name is not logged: a mistyped one may be someone's pass phrase.
        refused = _unauthenticated(data, budget, sender, Drop.V3_UNKNOWN_USER, "reports")
    elif level != known.level:
        refused = _unauthenticated(data, budget, sender, Drop.V3_UNSUPPORTED_SEC_LEVEL, "reports")
    elif known.auth is not None:
        if head.engine_id != engine_id:
            refused = _unauthenticated(data, budget, sender, Drop.V3_UNKNOWN_ENGINE_ID, "reports")
        elif not known.auth.verify(head.engine_id, head.auth_parameters, data):
            refused = _unauthenticated(data, budget, sender, Drop.V3_WRONG_DIGEST, "reports")
    if refused is not None:
        return refused
    return _check_scoped(data, head, expected=None)


def screen_v3_reply(
    data: bytes, users: Mapping[bytes, KnownUser], budget: SenderBudget | None, sender: str
) -> tuple[Drop, str] | None:
    """Why a datagram at the agent's inform (client) socket must be dropped, or None.

    Only answers to the agent's informs are expected there: a response or report whose
    digest verifies for one of the target users (under the sender's engine ID: the
    receiver is authoritative), or an unauthenticated report (to the discovery probe) of
    at most :data:`DISCOVERY_MAX_SIZE` octets within ``budget``.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        return Drop.OVERSIZED, f"{len(data)} octets"
    if message_version(data) != V3:
        return Drop.BAD_VERSION, "not SNMPv3"
    try:
        head = _read_headers(data)
    except ber.BerError as exc:
        return _reason(exc), str(exc)
    known = users.get(head.user) if head.user else None
    if head.user and known is None:
        return Drop.V3_UNKNOWN_USER, f"{len(data)} octets"
    if head.flags & FLAG_AUTH:
        if known is None or known.auth is None:
            return Drop.V3_UNSUPPORTED_SEC_LEVEL, "authenticated without a key"
        if not known.auth.verify(head.engine_id, head.auth_parameters, data):
            return Drop.V3_WRONG_DIGEST, f"{len(data)} octets"
        return _check_scoped(data, head, expected=(ber.RESPONSE, ber.REPORT))
    if len(data) > DISCOVERY_MAX_SIZE:
        return Drop.V3_DISCOVERY_TOO_BIG, f"{len(data)} octets"
    refused = _unauthenticated(data, budget, sender, Drop.V3_DISCOVERY_RATE, "reports")
    if refused is not None:
        return refused
    return _check_scoped(data, head, expected=(ber.REPORT,))


def _check_scoped(
    data: bytes, head: Headers, expected: tuple[int, ...] | None
) -> tuple[Drop, str] | None:
    """The limits on a plaintext scoped PDU (and its type, when ``expected``); an
    encrypted one is left to pysnmp, which decrypts only what authenticated."""
    try:
        tag, d_start, d_end = ber.header(data, head.scoped_start)
        if d_end > head.end:
            raise ber.BerError("msgData runs past the message")
        if tag == ber.SEQUENCE:
            _, position = _expect(data, d_start, ber.OCTET_STRING, "contextEngineID")
            _, position = _expect(data, position, ber.OCTET_STRING, "contextName")
            if expected is not None:
                pdu_tag, _, _ = ber.header(data, position)
                if pdu_tag not in expected:
                    return Drop.UNEXPECTED_PDU, f"PDU type {pdu_tag:#x}"
            if _check_pdu(data, position, d_end) > MAX_VARBINDS:
                return Drop.V3_TOO_MANY_VARBINDS, f"more than {MAX_VARBINDS}"
        elif tag != ber.OCTET_STRING or not head.flags & FLAG_PRIV:
            raise ber.BerError("msgData is neither a scoped PDU nor encrypted")
    except ber.BerError as exc:
        return Drop.V3_PARSE_ERROR, str(exc)
    return None


def _read_headers(data: bytes) -> Headers:
    _, start, end = ber.header(data, 0)
    _, position = _expect(data, start, ber.INTEGER, "msgVersion")
    g_start, g_end = _expect(data, position, ber.SEQUENCE, "msgGlobalData")
    position = g_start
    for what in ("msgID", "msgMaxSize"):
        i_start, position = _expect(data, position, ber.INTEGER, what)
        ber.decode_int(data, i_start, position)
    f_start, position = _expect(data, position, ber.OCTET_STRING, "msgFlags")
    if position - f_start != 1:
        raise ber.BerError("msgFlags is not one octet")
    flags = data[f_start]
    if flags & FLAG_PRIV and not flags & FLAG_AUTH:
        raise Refused("msgFlags asks for privacy without authentication", Drop.V3_INVALID_MSG)
    m_start, m_end = _expect(data, position, ber.INTEGER, "msgSecurityModel")
    if m_end > g_end or ber.decode_int(data, m_start, m_end) != USM:
        raise Refused("security model is not USM", Drop.V3_UNKNOWN_SECURITY_MODEL)
    s_start, s_end = _expect(data, g_end, ber.OCTET_STRING, "msgSecurityParameters")
    u_start, u_end = _expect(data, s_start, ber.SEQUENCE, "UsmSecurityParameters")
    if u_end > s_end:
        raise ber.BerError("USM parameters run past their OCTET STRING")
    e_start, position = _expect(data, u_start, ber.OCTET_STRING, "msgAuthoritativeEngineID")
    engine_id = data[e_start:position]
    for what in ("msgAuthoritativeEngineBoots", "msgAuthoritativeEngineTime"):
        i_start, position = _expect(data, position, ber.INTEGER, what)
        ber.decode_int(data, i_start, position)
    n_start, position = _expect(data, position, ber.OCTET_STRING, "msgUserName")
    a_start, a_end = _expect(data, position, ber.OCTET_STRING, "msgAuthenticationParameters")
    if a_end > u_end:
        raise ber.BerError("USM parameters run past their sequence")
    return Headers(
        flags=flags,
        engine_id=engine_id,
        user=data[n_start:position],
        auth_parameters=data[a_start:a_end],
        scoped_start=s_end,
        end=end,
    )
