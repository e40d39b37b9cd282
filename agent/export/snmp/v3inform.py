"""SNMPv3 informs (and v3 traps a test sends this way) through pysnmp's
NotificationOriginator on the agent's engine: USM, engine discovery, retransmissions.

An inform moves the cursor only when the receiver acknowledged it; none waits longer
than its deadline (:data:`inform_deadline`), whatever pysnmp does, and one given up on is
not sent again later (agent.export.snmp.pysnmp_state).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from loguru import logger
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as pysnmp_config
from pysnmp.entity.rfc3413 import ntforg
from pysnmp.error import PySnmpError
from pysnmp.proto import rfc1902

from agent.config import SnmpTarget, parse_address
from agent.errors import ExportError
from agent.export.snmp.inform_socket import ScreenedClientTransport, ScreenedClientTransport6
from agent.export.snmp.notify import Syntax, Var
from agent.export.snmp.pysnmp_state import abandon_informs, forget_peer, keep_timer_running
from agent.export.snmp.service import SnmpService
from agent.inform_bounds import v3_inform_deadline

CLIENT_DOMAIN = (*udp.DOMAIN_NAME, 1000)
CLIENT_DOMAIN6 = (*udp6.DOMAIN_NAME, 1000)

inform_deadline = v3_inform_deadline
"""Seconds an SNMPv3 inform may take (agent.inform_bounds)."""


def _pysnmp_value(var: Var) -> Any:
    if var.syntax is Syntax.OCTETS:
        return rfc1902.OctetString(var.value)
    if var.syntax is Syntax.INTEGER:
        return rfc1902.Integer32(var.value)
    if var.syntax is Syntax.UNSIGNED:
        return rfc1902.Unsigned32(var.value)
    if var.syntax is Syntax.TIMETICKS:
        return rfc1902.TimeTicks(var.value)
    return rfc1902.ObjectIdentifier(var.value)


class V3Sender:
    """A pysnmp notification target on the agent's SNMP engine."""

    def __init__(self, service: SnmpService, target: SnmpTarget, index: int) -> None:
        self.service = service
        self.target = target
        self.name = f"provsync-target-{index}"
        self._originator = ntforg.NotificationOriginator()
        self._configured = False
        self._warned = False
        host, port = parse_address(target.address, default_port=162)
        self._domain = CLIENT_DOMAIN6 if ":" in host else CLIENT_DOMAIN
        self._address = (host, port)
        self.deadline = inform_deadline(target.timeout, target.retries)
        """The longest :meth:`send` waits for an inform's answer."""

    def _configure(self) -> None:
        engine = self.service.engine
        target = self.target
        users = {u.name: u for u in self.service.snmp.users}
        user = users[target.user]
        domain = self._domain
        domains = self.service.client_domains
        if domain not in domains:
            # Screened: anyone can send to this socket (agent.export.snmp.inform_socket).
            # The service hashed each pass phrase once (about 1 MB of hashing each).
            known = self.service.known_users
            counters = self.service.counters
            transport = (
                ScreenedClientTransport6(known, counters)
                if domain == CLIENT_DOMAIN6
                else ScreenedClientTransport(known, counters)
            )
            pysnmp_config.add_transport(engine, domain, transport.open_client_mode())
            domains.add(domain)
        params, tag = f"{self.name}-params", f"{self.name}-tag"
        pysnmp_config.add_target_parameters(engine, params, user.name, user.level, mpModel=3)
        pysnmp_config.add_target_address(
            engine,
            self.name,
            domain,
            self._address,
            params,
            timeout=int(target.timeout * 100),
            retryCount=target.retries,
            tagList=tag,
        )
        pysnmp_config.add_notification_target(engine, self.name, params, tag, target.kind)
        self._configured = True

    async def send(self, varbinds: Sequence[Var]) -> None:
        """Send one notification; for an inform, wait (at most :attr:`deadline`) for the
        receiver's answer.

        Raises:
            ExportError: the inform was not acknowledged (or pysnmp refused to send it).
        """
        if not self._configured:
            self._configure()
        keep_timer_running(self.service.engine)
        # One future per notification: an answer pysnmp reports after this send gave up
        # finds its own (cancelled) future and is dropped; it cannot complete a later one.
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def _answer(
            snmp_engine: Any,
            handle: Any,
            indication: Any,
            status: Any,
            index: Any,
            var_binds: Any,
            future: asyncio.Future[Any],
        ) -> None:
            if not future.done():
                future.set_result(indication)

        pairs = [(v.oid, _pysnmp_value(v)) for v in varbinds]
        try:
            self._originator.send_varbinds(
                self.service.engine, self.name, None, b"", pairs, _answer, done
            )
        except PySnmpError as exc:
            raise ExportError(f"{self.target.kind} to {self.target.address}: {exc}") from exc
        if self.target.kind == "trap":
            return  # pysnmp reports nothing for traps: sent is all we know
        try:
            indication = await asyncio.wait_for(done, self.deadline)
        except asyncio.CancelledError:
            # The exporter's own deliver_timeout (or a stop) ended the wait first: the
            # receiver may have changed under pysnmp's cache just the same.
            self._abandon()
            raise
        except TimeoutError:
            self._abandon()
            restarted = keep_timer_running(self.service.engine)
            raise ExportError(
                f"inform to {self.target.address}: no answer from pysnmp in "
                f"{self.deadline:g}s" + ("; its timer had stopped" if restarted else "")
            ) from None
        if indication is not None:
            self._forget_peer()
            raise ExportError(f"inform to {self.target.address} failed: {indication}")

    def _abandon(self) -> None:
        """Given up on the inform: pysnmp must not send it again later (out of order)."""
        if abandon_informs(self.service.engine, self._originator) is None and not self._warned:
            self._warned = True
            logger.warning("pysnmp internals moved: an abandoned inform may be retransmitted")
        self._forget_peer()

    def _forget_peer(self) -> None:
        """Drop what pysnmp cached about the receiver's engine (ID, boots, time).

        A receiver that restarted comes back with a higher engine boots; pysnmp 7.1 keeps
        sending with the cached values and never gets an answer. Forgetting them makes
        the next inform rediscover the receiver.
        """
        forget_peer(self.service.engine, (self._domain, self._address))
