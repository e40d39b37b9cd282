"""The SNMP command responder: one UDP socket per listen address.

Every datagram is screened first (agent.export.snmp.screen: size, v3 headers and user,
limits), so that what anyone can send costs a header walk before it is dropped.
SNMPv1/v2c requests are answered by the BER fast path (agent.export.snmp.fastpath);
SNMPv3 messages go to pysnmp, which does USM and engine state and reads the same view
through :class:`ViewInstrumentation`. Both see data that is current: when the view is
behind the committed notification log it is brought up to date before answering.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as pysnmp_config
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c
from pysnmp.smi import error as smi_error
from pysnmp.smi.instrum import AbstractMibInstrumController

from agent.config import parse_address
from agent.errors import ProvsyncError
from agent.export.snmp import ber, screen
from agent.export.snmp.counters import DATAGRAMS, TO_ENGINE
from agent.export.snmp.drops import Drop, DropCounter
from agent.export.snmp.rate_limits import SenderBudget
from agent.export.snmp.v3auth import KnownUser
from agent.export.snmp.view import MibView

Handler = Callable[[bytes, str], bytes | None]
"""A v1/v2c datagram and its sender (for logs) to the answer, or None to drop it."""


@dataclass(frozen=True)
class V3Screen:
    """What the listener screens v3 requests with (agent.export.snmp.screen.screen_v3)."""

    users: Mapping[bytes, KnownUser]
    engine_id: bytes
    budget: SenderBudget


def to_pyasn1(value: bytes) -> Any:
    """A value TLV of the view as the pysnmp object SNMPv3 responses are built from."""
    tag, start, end = ber.header(value, 0)
    content = value[start:end]
    if tag == ber.OCTET_STRING:
        return rfc1902.OctetString(content)
    if tag == ber.INTEGER:
        return rfc1902.Integer32(int.from_bytes(content, "big", signed=True))
    number = int.from_bytes(content, "big")
    if tag == ber.GAUGE32:
        return rfc1902.Gauge32(number)
    if tag == ber.COUNTER32:
        return rfc1902.Counter32(number)
    if tag == ber.TIMETICKS:
        return rfc1902.TimeTicks(number)
    if tag == ber.OBJECT_IDENTIFIER:
        return rfc1902.ObjectIdentifier(ber.decode_oid(content))
    if tag == ber.NO_SUCH_INSTANCE:
        return rfc1905.noSuchInstance
    return rfc1905.noSuchObject


def _value_of(encoded_varbind: bytes) -> bytes:
    _, start, _ = ber.header(encoded_varbind, 0)
    _, _, oid_end = ber.header(encoded_varbind, start)
    return encoded_varbind[oid_end:]


V3_SET_REFUSED = "v3_set_refused"


class ViewInstrumentation(AbstractMibInstrumController):  # type: ignore[misc]
    """pysnmp's MIB instrumentation interface over our view (SNMPv3 path).

    Args:
        counters: where refused SETs are counted (``v3_set_refused``).
    """

    def __init__(self, view: Callable[[], MibView], counters: dict[str, int] | None = None) -> None:
        self._view = view
        self._counters = counters if counters is not None else {}

    def read_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        view = self._view()
        access = ctx.get("acFun")
        answer = []
        for index, (name, _) in enumerate(var_binds):
            value = to_pyasn1(view.get(tuple(name)))
            if access and access("read", (name, value), idx=index, **ctx):
                value = rfc1905.noSuchObject
            answer.append((name, value))
        return answer

    def read_next_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        view = self._view()
        access = ctx.get("acFun")
        answer: list[tuple[Any, Any]] = []
        for index, (name, _) in enumerate(var_binds):
            for oid, encoded in view.iter_from(tuple(name)):
                found = rfc1902.ObjectName(oid)
                value = to_pyasn1(_value_of(encoded))
                try:
                    if access and access("read", (found, value), idx=index, **ctx):
                        continue
                except smi_error.NoAccessError:
                    continue
                answer.append((found, value))
                break
            else:
                answer.append((name, rfc1905.endOfMibView))
        return answer

    def write_variables(self, *var_binds: Any, **ctx: Any) -> Any:
        """Refuses every SET with noAccess at the first variable binding.

        The agent is read-only: no user has a write view, so every variable is outside
        the view a SET is checked against, and RFC 3416 4.2.5 (1) answers noAccess with
        the index of the first one (as the v1/v2c fast path does; notWritable, step 2,
        is for variables inside the view).
        """
        self._counters[V3_SET_REFUSED] = self._counters.get(V3_SET_REFUSED, 0) + 1
        raise smi_error.NoAccessError(idx=0)


class BulkResponder(cmdrsp.BulkCommandResponder):  # type: ignore[misc]
    """Stops at the first repetition where every var-bind is endOfMibView (RFC 3416
    4.2.3) instead of repeating endOfMibView max-repetitions times."""

    max_varbinds = 128

    def handle_management_operation(
        self, snmp_engine: Any, state_reference: Any, context_name: Any, pdu: Any
    ) -> None:
        requested = v2c.apiPDU.get_varbinds(pdu)
        non_repeaters = min(max(int(v2c.apiBulkPDU.get_non_repeaters(pdu)), 0), len(requested))
        repetitions = max(int(v2c.apiBulkPDU.get_max_repetitions(pdu)), 0)
        repeaters = len(requested) - non_repeaters
        if repeaters:
            repetitions = min(repetitions, self.max_varbinds // repeaters)
        read_next = self.snmpContext.get_mib_instrum(context_name).read_next_variables
        ctx = {"snmpEngine": snmp_engine, "acFun": self.verify_access, "cbCtx": self.cbCtx}
        answer = list(read_next(*requested[:non_repeaters], **ctx)) if non_repeaters else []
        current = requested[non_repeaters:]
        while repetitions and repeaters:
            row = read_next(*current, **ctx)
            answer.extend(row)
            if all(v.tagSet == rfc1905.EndOfMibView.tagSet for _, v in row):
                break
            current = row
            repetitions -= 1
        self.send_varbinds(snmp_engine, state_reference, 0, 0, answer)
        self.release_state_information(state_reference)


class SplitTransport(udp.UdpAsyncioTransport):  # type: ignore[misc]
    """pysnmp's UDP transport, screened, with SNMPv1/v2c taken by our handler.

    Every datagram is screened before pysnmp's decoder sees it (agent.export.snmp.screen):
    oversized ones are dropped unread, v3 ones that do not authenticate beyond the
    unauthenticated budget, or beyond the limits, are dropped after a header walk and
    a digest check; everything else that is not v3 (v1, v2c, junk) is the handler's to
    answer or to count.
    """

    def __init__(self, handler: Handler, counters: dict[str, int], screen: V3Screen) -> None:
        super().__init__()
        self._setup(handler, counters, screen)

    def _setup(self, handler: Handler, counters: dict[str, int], v3: V3Screen) -> None:
        self._handler = handler
        self._counters = counters
        self._drops = DropCounter(counters)
        self._v3 = v3

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        counters = self._counters
        counters[DATAGRAMS] = counters.get(DATAGRAMS, 0) + 1  # snmpInPkts: every one
        source = _peer(address)
        if len(datagram) > screen.MAX_MESSAGE_SIZE:
            self._drops.drop(Drop.OVERSIZED, source, f"{len(datagram)} octets")
            return
        if screen.message_version(datagram) == screen.V3:
            v3 = self._v3
            refused = screen.screen_v3(
                datagram, v3.users, v3.budget, _host(address), engine_id=v3.engine_id
            )
            if refused is not None:
                self._drops.drop(refused[0], source, refused[1])
                return
            counters[TO_ENGINE] = counters.get(TO_ENGINE, 0) + 1  # pysnmp counts it on
            super().datagram_received(datagram, address)
            return
        try:
            answer = self._handler(datagram, source)
        except Exception:
            logger.exception("SNMP request handling failed")
            counters["handler_errors"] = counters.get("handler_errors", 0) + 1
            return
        if answer is not None:
            self.transport.sendto(answer, address)


class SplitTransport6(udp6.Udp6AsyncioTransport, SplitTransport):  # type: ignore[misc]
    def __init__(self, handler: Handler, counters: dict[str, int], v3: V3Screen) -> None:
        udp6.Udp6AsyncioTransport.__init__(self)
        self._setup(handler, counters, v3)

    datagram_received = SplitTransport.datagram_received


def _host(address: Any) -> str:
    """The sender's host: what the per-sender budget is kept by (ports change per
    session)."""
    try:
        return str(address[0])
    except (TypeError, IndexError):
        return str(address)


def _peer(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)


def open_listener(
    snmp_engine: Any,
    address: str,
    index: int,
    handler: Handler,
    counters: dict[str, int],
    v3: V3Screen,
) -> Any:
    """Listens on ``address``, screening v3 messages with ``v3`` (shared by every
    listener, so that the budget is one)."""
    host, port = parse_address(address)
    six = ":" in host
    sock = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ProvsyncError(f"SNMP agent cannot listen on {address}: {exc.strerror}") from None
    transport_class = SplitTransport6 if six else SplitTransport
    transport = transport_class(handler, counters, v3).open_server_mode(sock=sock)
    domain = (udp6.DOMAIN_NAME if six else udp.DOMAIN_NAME) + (index,)
    pysnmp_config.add_transport(snmp_engine, domain, transport)
    return transport


def register_view(
    snmp_engine: Any, view: Callable[[], MibView], counters: dict[str, int] | None = None
) -> None:
    snmp_context = context.SnmpContext(snmp_engine)
    snmp_context.unregister_context_name(b"")
    snmp_context.register_context_name(b"", ViewInstrumentation(view, counters))
    cmdrsp.GetCommandResponder(snmp_engine, snmp_context)
    cmdrsp.NextCommandResponder(snmp_engine, snmp_context)
    BulkResponder(snmp_engine, snmp_context)
    # Without a SET responder pysnmp answers an authenticated SET with an
    # unauthenticated snmpUnknownPDUHandlers report (RFC 3412 4.2.2.1.2) instead of
    # the error-status Response RFC 3416 4.2.5 asks for.
    cmdrsp.SetCommandResponder(snmp_engine, snmp_context)
