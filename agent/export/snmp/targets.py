"""Notification targets: one exporter (with its own cursor) per [[snmp.targets]] entry.

SNMPv2c traps and informs go out on the BER fast path; SNMPv3 traps and informs go
through pysnmp's NotificationOriginator (USM, engine discovery for informs). Traps are
best effort: the cursor moves once they are sent. Informs move the cursor only when the
receiver acknowledged them; an unacknowledged inform fails the batch, which is retried
from the cursor with backoff, so a receiver that was down gets everything, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as pysnmp_config
from pysnmp.entity.rfc3413 import ntforg
from pysnmp.proto import rfc1902

from agent.alarms.manager import AlarmManager
from agent.alarms.records import Notification
from agent.config import ExporterSettings, SnmpTarget, parse_address
from agent.errors import ExportError
from agent.export.base import Exporter
from agent.export.snmp.notify import Syntax, Var, kind_of, notification_vars
from agent.export.snmp.service import SnmpService
from agent.export.snmp.v2c import V2cSender
from agent.export.snmp.v3trap import V3TrapEncoder

CLIENT_DOMAIN = (*udp.DOMAIN_NAME, 1000)
CLIENT_DOMAIN6 = (*udp6.DOMAIN_NAME, 1000)


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

    def _configure(self) -> None:
        engine = self.service.engine
        target = self.target
        users = {u.name: u for u in self.service.snmp.users}
        user = users[target.user]
        host, port = parse_address(target.address, default_port=162)
        domain = CLIENT_DOMAIN6 if ":" in host else CLIENT_DOMAIN
        domains = self.service.client_domains
        if domain not in domains:
            transport = udp6.Udp6AsyncioTransport() if ":" in host else udp.UdpAsyncioTransport()
            pysnmp_config.add_transport(engine, domain, transport.open_client_mode())
            domains.add(domain)
        params, tag = f"{self.name}-params", f"{self.name}-tag"
        pysnmp_config.add_target_parameters(engine, params, user.name, user.level, mpModel=3)
        pysnmp_config.add_target_address(
            engine, self.name, domain, (host, port), params,
            timeout=int(target.timeout * 100), retryCount=target.retries, tagList=tag,
        )  # fmt: skip
        pysnmp_config.add_notification_target(engine, self.name, params, tag, target.kind)
        self._configured = True

    async def send(self, varbinds: Sequence[Var]) -> None:
        if not self._configured:
            self._configure()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def _answer(
            snmp_engine: Any, handle: Any, indication: Any, status: Any, index: Any,
            var_binds: Any, future: asyncio.Future[Any],
        ) -> None:  # fmt: skip
            if not future.done():
                future.set_result(indication)

        pairs = [(v.oid, _pysnmp_value(v)) for v in varbinds]
        self._originator.send_varbinds(
            self.service.engine, self.name, None, b"", pairs, _answer, done
        )
        if self.target.kind == "trap":
            return  # pysnmp reports nothing for traps: sent is all we know
        indication = await done
        if indication is not None:
            self._forget_peer()
            raise ExportError(f"inform to {self.target.address} failed: {indication}")

    def _forget_peer(self) -> None:
        """Drop what pysnmp cached about the receiver's engine (ID, boots, time).

        A receiver that restarted comes back with a higher engine boots; pysnmp 7.1 keeps
        sending with the cached values and never gets an answer. Forgetting them makes
        the next inform rediscover the receiver. The caches are private to pysnmp, so
        this is guarded: without them, the retry behaves as before.
        """
        engine = self.service.engine
        host, port = parse_address(self.target.address, default_port=162)
        domain = CLIENT_DOMAIN6 if ":" in host else CLIENT_DOMAIN
        processing = engine.message_processing_subsystems.get(3)
        cache = getattr(processing, "_SnmpV3MessageProcessingModel__engineIdCache", None)
        if not isinstance(cache, dict):
            return
        entry = cache.pop((domain, (host, port)), None)
        security = engine.security_models.get(3)
        timeline = getattr(security, "_SnmpUSMSecurityModel__timeline", None)
        if entry and isinstance(timeline, dict):
            timeline.pop(entry.get("securityEngineId"), None)


class SnmpTargetExporter(Exporter):
    def __init__(
        self,
        manager: AlarmManager,
        settings: ExporterSettings,
        target: SnmpTarget,
        service: SnmpService,
        index: int,
    ) -> None:
        super().__init__(target.target_name, manager, settings, min_severity=target.min_severity)
        self.target = target
        self.service = service
        self._kinds = set(target.kinds)
        self._v2c: V2cSender | None = None
        self._v3: V3Sender | None = None
        self._v3_traps: V3TrapEncoder | None = None
        if target.version == "v2c":
            self._v2c = V2cSender(target.address, target.community.get_secret_value().encode())
        elif target.kind == "trap":
            # v3 traps: the agent is authoritative, so the fast path builds them itself.
            user = {u.name: u for u in service.snmp.users}[target.user]
            self._v2c = V2cSender(target.address, b"")
            self._v3_traps = V3TrapEncoder(bytes.fromhex(service.engine_id), service.boots, user)
        else:
            self._v3 = V3Sender(service, target, index)

    def accepts(self, notification: Notification) -> bool:
        return kind_of(notification) in self._kinds and super().accepts(notification)

    async def open(self) -> None:
        if self._v2c is not None:
            await self._v2c.open()

    async def close(self) -> None:
        if self._v2c is not None:
            self._v2c.close()

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        target = self.target
        for note in notifications:
            varbinds = notification_vars(note, self.service.oids, self.service.uptime())
            if self._v3_traps is not None:
                assert self._v2c is not None
                self._v2c.send(self._v3_traps.encode(varbinds))
            elif self._v2c is not None:
                if target.kind == "trap":
                    self._v2c.trap(varbinds)
                else:
                    await self._v2c.inform(varbinds, target.timeout, target.retries)
            else:
                assert self._v3 is not None
                await self._v3.send(varbinds)
            self.progress(note.seq)
