"""Answers SNMPv1 and SNMPv2c GET / GETNEXT / GETBULK straight from the MIB view.

Read-only: SET is refused (noAccess, or noSuchName in v1). Messages with an unknown
community, malformed BER or an unexpected PDU are dropped and counted by reason
(agent.export.snmp.drops), never answered and never fatal. The community is checked
before the PDU is decoded; a request of more than MAX_VARBINDS variable bindings gets
tooBig. SNMPv3 goes to pysnmp (see agent.export.snmp.agent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from agent.export.snmp import ber
from agent.export.snmp.counters import SET_REFUSED
from agent.export.snmp.drops import Drop, DropCounter
from agent.export.snmp.screen import MAX_MESSAGE_SIZE, MAX_VARBINDS
from agent.export.snmp.view import MibView, Varbind, varbind

V1, V2C = 0, 1
MAX_RESPONSE = MAX_MESSAGE_SIZE
"""Octets: snmpEngineMaxMessageSize, the largest message the agent receives or sends
(RFC 3411); GETBULK answers are cut short to fit, larger GET answers get tooBig."""
MAX_REPETITIONS = 2000


class _Request:
    """A v1/v2c request, decoded in two steps so the community is checked before any of
    the PDU is read (an unknown community costs a few header reads, whatever follows)."""

    __slots__ = (
        "community",
        "error_index",
        "error_status",
        "oids",
        "pdu_start",
        "raw_community",
        "raw_id",
        "raw_varbinds",
        "raw_version",
        "tag",
        "too_many",
        "version",
    )

    def __init__(self, data: bytes) -> None:
        tag, start, _end = ber.header(data, 0)
        if tag != ber.SEQUENCE:
            raise ber.BerError("message is not a SEQUENCE")
        tag, v_start, v_end = ber.header(data, start)
        if tag != ber.INTEGER:
            raise ber.BerError("version is not an INTEGER")
        self.version = ber.decode_int(data, v_start, v_end)
        self.raw_version = data[start:v_end]
        tag, c_start, c_end = ber.header(data, v_end)
        if tag != ber.OCTET_STRING:
            raise ber.BerError("community is not an OCTET STRING")
        self.community = data[c_start:c_end]
        self.raw_community = data[v_end:c_end]
        self.pdu_start = c_end
        self.oids: list[tuple[int, ...]] = []
        self.too_many = False

    def decode_pdu(self, data: bytes) -> None:
        """Reads the PDU; past MAX_VARBINDS it sets ``too_many`` and stops reading."""
        self.tag, p_start, p_end = ber.header(data, self.pdu_start)
        tag, _r_start, r_end = ber.header(data, p_start)
        if tag != ber.INTEGER:
            raise ber.BerError("request-id is not an INTEGER")
        self.raw_id = data[p_start:r_end]
        tag, s_start, s_end = ber.header(data, r_end)
        self.error_status = ber.decode_int(data, s_start, s_end)
        tag, i_start, i_end = ber.header(data, s_end)
        self.error_index = ber.decode_int(data, i_start, i_end)
        tag, l_start, l_end = ber.header(data, i_end)
        if tag != ber.SEQUENCE or l_end > p_end:
            raise ber.BerError("varbind list is not a SEQUENCE")
        self.raw_varbinds = data[l_start:l_end]
        position = l_start
        while position < l_end:
            if len(self.oids) == MAX_VARBINDS:
                self.too_many = True
                return
            tag, vb_start, vb_end = ber.header(data, position)
            if tag != ber.SEQUENCE or vb_end > l_end:
                raise ber.BerError("varbind is not a SEQUENCE inside its list")
            tag, o_start, o_end = ber.header(data, vb_start)
            if tag != ber.OBJECT_IDENTIFIER or o_end > vb_end:
                raise ber.BerError("varbind name is not an OID")
            self.oids.append(ber.decode_oid(data[o_start:o_end]))
            position = vb_end


def _varbind_oid(encoded: bytes) -> tuple[int, ...]:
    _, start, _ = ber.header(encoded, 0)
    _, oid_start, oid_end = ber.header(encoded, start)
    return ber.decode_oid(encoded[oid_start:oid_end])


class FastResponder:
    """SNMPv1/v2c command responder over a :class:`MibView`.

    Args:
        view: returns the current view (called once per request).
        communities: accepted community strings (read-only).
        allow_v1: answer SNMPv1 too.
    """

    def __init__(
        self,
        view: Callable[[], MibView],
        communities: set[bytes],
        *,
        allow_v1: bool = True,
        max_response: int = MAX_RESPONSE,
    ) -> None:
        self._view = view
        self._communities = communities
        self._allow_v1 = allow_v1
        self._max_response = max_response
        self.counters: Counter[str] = Counter()
        self.drops = DropCounter(self.counters)

    def handle(self, data: bytes, source: str | None = None) -> bytes | None:
        """The response datagram, or None to drop the request (counted by reason)."""
        self.counters["in_packets"] += 1
        try:
            request = _Request(data)
        except ber.BerError as exc:
            self.drops.drop(Drop.PARSE_ERROR, source, str(exc))
            return None
        if request.version not in (V1, V2C) or (request.version == V1 and not self._allow_v1):
            self.drops.drop(Drop.BAD_VERSION, source)
            return None
        if request.community not in self._communities:
            # Never the community itself in the log: it is the v1/v2c credential.
            self.drops.drop(Drop.BAD_COMMUNITY, source)
            return None
        try:
            request.decode_pdu(data)
        except ber.BerError as exc:
            self.drops.drop(Drop.PARSE_ERROR, source, str(exc))
            return None
        bulk = request.tag == ber.GET_BULK and request.version == V2C
        if request.too_many and (request.tag in (ber.GET, ber.GET_NEXT) or bulk):
            # A clear answer to a manager that holds the community; the list is empty
            # as for any tooBig (RFC 3416 4.2.1).
            self.counters["too_many_varbinds"] += 1
            return self._respond(request, [], ber.TOO_BIG, 0)
        view = self._view()
        if request.tag == ber.GET:
            return self._get(request, view)
        if request.tag == ber.GET_NEXT:
            return self._get_next(request, view)
        if bulk:
            return self._get_bulk(request, view)
        if request.tag == ber.SET:
            self.counters[SET_REFUSED] += 1
            status = ber.NO_SUCH_NAME if request.version == V1 else ber.NO_ACCESS
            # RFC 3416 4.2.5 (and RFC 1157 4.1.5): an error answer to a SET carries the
            # request's variable-bindings as received, values included (pysnmp's v3
            # answer does the same).
            return self._respond_raw(request, request.raw_varbinds, status, 1)
        self.drops.drop(Drop.UNEXPECTED_PDU, source)
        return None

    # ------------------------------------------------------------------ PDUs
    def _respond(
        self, request: _Request, varbinds: list[bytes], status: int = 0, index: int = 0
    ) -> bytes:
        pdu = ber.tlv(
            ber.RESPONSE,
            request.raw_id
            + ber.integer(status)
            + ber.integer(index)
            + ber.tlv(ber.SEQUENCE, b"".join(varbinds)),
        )
        self.counters["out_responses"] += 1
        return ber.tlv(ber.SEQUENCE, request.raw_version + request.raw_community + pdu)

    def _respond_raw(self, request: _Request, varbinds: bytes, status: int, index: int) -> bytes:
        return self._respond(request, [varbinds], status, index)

    def _error(self, request: _Request, status: int, index: int) -> bytes:
        echoed = [varbind(ber.oid_body(oid), ber.NULL_VALUE) for oid in request.oids]
        return self._respond(request, echoed, status, index)

    def _fits(self, request: _Request, size: int) -> bool:
        # Header overhead is small and bounded; leave room for it.
        return size + len(request.raw_community) + 64 <= self._max_response

    def _get(self, request: _Request, view: MibView) -> bytes:
        varbinds = []
        for position, oid in enumerate(request.oids, start=1):
            value = view.get(oid)
            if request.version == V1 and value[0] in (ber.NO_SUCH_OBJECT, ber.NO_SUCH_INSTANCE):
                return self._error(request, ber.NO_SUCH_NAME, position)
            varbinds.append(varbind(ber.oid_body(oid), value))
        return self._finish(request, varbinds)

    def _get_next(self, request: _Request, view: MibView) -> bytes:
        varbinds = []
        for position, oid in enumerate(request.oids, start=1):
            found = next(view.iter_from(oid), None)
            if found is None:
                if request.version == V1:
                    return self._error(request, ber.NO_SUCH_NAME, position)
                varbinds.append(varbind(ber.oid_body(oid), ber.END_OF_MIB_VIEW_VALUE))
            else:
                varbinds.append(found[1])
        return self._finish(request, varbinds)

    def _finish(self, request: _Request, varbinds: list[bytes]) -> bytes:
        if not self._fits(request, sum(len(v) for v in varbinds)):
            # RFC 3416 4.2.1: tooBig carries an empty variable-bindings list.
            return self._respond(request, [], ber.TOO_BIG, 0)
        return self._respond(request, varbinds)

    def _walk_one(
        self,
        request: _Request,
        view: MibView,
        oid: tuple[int, ...],
        repetitions: int,
        varbinds: list[bytes],
        size: int,
    ) -> bytes:
        """GETBULK with one repeater (what snmpbulkwalk sends): the hot path."""
        limit = self._max_response - len(request.raw_community) - 64
        taken = 0
        for taken, item in enumerate(view.iter_encoded(oid), start=1):
            size += len(item)
            if size > limit and varbinds:
                break
            varbinds.append(item)
            if taken == repetitions:
                break
        else:
            last = _varbind_oid(varbinds[-1]) if taken else oid
            varbinds.append(varbind(ber.oid_body(last), ber.END_OF_MIB_VIEW_VALUE))
        return self._respond(request, varbinds)

    def _get_bulk(self, request: _Request, view: MibView) -> bytes:
        oids = request.oids
        non_repeaters = min(max(request.error_status, 0), len(oids))
        repetitions = min(max(request.error_index, 0), MAX_REPETITIONS)
        varbinds: list[bytes] = []
        size = 0
        for oid in oids[:non_repeaters]:
            found = next(view.iter_from(oid), None)
            item = found[1] if found else varbind(ber.oid_body(oid), ber.END_OF_MIB_VIEW_VALUE)
            varbinds.append(item)
            size += len(item)
        repeaters = oids[non_repeaters:]
        if not repeaters or repetitions == 0:
            return self._finish(request, varbinds)
        if len(repeaters) == 1:
            return self._walk_one(request, view, repeaters[0], repetitions, varbinds, size)
        walkers: list[Iterator[Varbind] | None] = [view.iter_from(oid) for oid in repeaters]
        last = list(repeaters)
        for _ in range(repetitions):
            ended = 0
            row: list[bytes] = []
            for j, walker in enumerate(walkers):
                found = next(walker, None) if walker is not None else None
                if found is None:
                    walkers[j] = None
                    ended += 1
                    item = varbind(ber.oid_body(last[j]), ber.END_OF_MIB_VIEW_VALUE)
                else:
                    last[j] = found[0]
                    item = found[1]
                row.append(item)
            row_size = sum(len(item) for item in row)
            if varbinds and not self._fits(request, size + row_size):
                break
            varbinds.extend(row)
            size += row_size
            if ended == len(walkers):
                break
        return self._respond(request, varbinds)
