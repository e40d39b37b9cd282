"""Notification targets: one exporter (with its own cursor) per [[snmp.targets]] entry.

SNMPv2c traps and informs and SNMPv3 traps go out on the BER fast path
(agent.export.snmp.trap_path for traps, agent.export.snmp.v2c for v2c informs); SNMPv3
informs go through pysnmp (agent.export.snmp.v3inform). Informs move the cursor only
when the receiver acknowledged them, one at a time; an unacknowledged inform fails the
batch, which is retried from the cursor with backoff, so a receiver that was down gets
everything, in order. This start's coldStart or warmStart goes first, in the log's order
(agent.export.snmp.start_traps).
"""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger

from agent.alarms.ports import ExporterPorts
from agent.alarms.records import Notification
from agent.config import ExporterSettings, SnmpTarget
from agent.export.base import Exporter
from agent.export.kinds import kind_of
from agent.export.snmp.notify import notification_vars
from agent.export.snmp.service import SnmpService
from agent.export.snmp.start_traps import StartKind, ThisStart, start_vars
from agent.export.snmp.trap_path import TrapPath, trap_path
from agent.export.snmp.v2c import V2cSender
from agent.export.snmp.v3inform import V3Sender
from agent.export.snmp.varbinds import VarbindEncoder
from agent.inform_bounds import v2c_inform_wait


class SnmpTargetExporter(Exporter):
    def __init__(
        self,
        ports: ExporterPorts,
        settings: ExporterSettings,
        target: SnmpTarget,
        service: SnmpService,
        index: int,
    ) -> None:
        super().__init__(target.target_name, ports, settings, min_severity=target.min_severity)
        self.target = target
        self.service = service
        self._kinds = set(target.kinds)
        self._this_start = ThisStart.of(service.engine_id, service.boots)
        self._start_sent = False
        """This process's start trap went out (a retried batch does not send it again)."""
        self._varbinds = VarbindEncoder(service.oids)
        self._traps: TrapPath | None = None
        self._v2c: V2cSender | None = None  # v2c informs
        self._v3: V3Sender | None = None  # v3 informs
        if target.kind == "trap":
            self._traps = trap_path(
                target,
                service.oids,
                engine_id=bytes.fromhex(service.engine_id),
                boots=service.boots,
                users=service.snmp.users,
            )
        elif target.version == "v2c":
            self._v2c = V2cSender(target.address, target.community.get_secret_value().encode())
        else:
            self._v3 = V3Sender(service, target, index)

    def accepts(self, notification: Notification) -> bool:
        # This start's agent-started event always goes: it carries the start trap, which
        # follows no filter (agent.export.snmp.start_traps); its provsyncEvent does.
        if not self._start_sent and self._this_start.kind_of(notification) is not None:
            return True
        return self._wanted(notification)

    def _wanted(self, notification: Notification) -> bool:
        """The target's filter of provsync notifications (kinds, min_severity)."""
        return kind_of(notification) in self._kinds and super().accepts(notification)

    def least_deliver_timeout(self) -> float:
        target = self.target
        if target.kind != "inform":
            return 0.0
        if self._v3 is not None:
            return self._v3.deadline + 1.0
        # v2c: the first wait is the timeout, each retry waits twice as long.
        return v2c_inform_wait(target.timeout, target.retries) + 1.0

    def send_counters(self) -> dict[str, int]:
        """What the trap socket had to wait out or skip (agent.export.snmp.v2c)."""
        sender = self._traps.sender if self._traps is not None else self._v2c
        if sender is None:
            return {}
        return {
            "stalls": sender.stalls,
            "nobufs": sender.nobufs,
            "refused": sender.refused,
            "oversized": sender.oversized,
        }

    async def open(self) -> None:
        if self._traps is not None:
            await self._traps.open()
        elif self._v2c is not None:
            await self._v2c.open()

    async def close(self) -> None:
        if self._traps is not None:
            self._traps.close()
        elif self._v2c is not None:
            self._v2c.close()

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        if not self._start_sent:
            for index, note in enumerate(notifications):
                kind = self._this_start.kind_of(note)
                if kind is None:
                    continue
                # In the log's order: what came before, the start trap, then the event.
                await self._deliver_notes(notifications[:index])
                await self._send_start(kind)
                if not self._wanted(note):
                    self.progress(note.seq)
                    index += 1
                await self._deliver_notes(notifications[index:])
                return
        await self._deliver_notes(notifications)

    async def _send_start(self, kind: StartKind) -> None:
        """coldStart or warmStart, as this target's other notifications go (an inform
        waits for its acknowledgement)."""
        varbinds = start_vars(kind, self.service.uptime())
        if self._traps is not None:
            await self._traps.send_one(varbinds)
        elif self._v2c is not None:
            body = b"".join(v.ber() for v in varbinds)
            await self._v2c.inform(body, self.target.timeout, self.target.retries)
        else:
            assert self._v3 is not None
            await self._v3.send(varbinds)
        self._start_sent = True
        logger.debug("export target {}: {}Start sent", self.name, kind)

    async def _deliver_notes(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        if self._traps is not None:
            await self._traps.deliver(notifications, self.service.uptime, self.progress)
            return
        target = self.target
        for note in notifications:
            if self._v2c is not None:
                varbinds = self._varbinds.encode(note, self.service.uptime())
                await self._v2c.inform(varbinds, target.timeout, target.retries)
            else:
                assert self._v3 is not None
                await self._v3.send(
                    notification_vars(note, self.service.oids, self.service.uptime())
                )
            self.progress(note.seq)
