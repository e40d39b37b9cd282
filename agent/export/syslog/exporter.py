"""A syslog collector as an exporter: its own cursor, filter, transport and reconnects."""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence

from loguru import logger

from agent.alarms.ports import ExporterPorts
from agent.alarms.records import Notification
from agent.config import ExporterSettings, Settings, SyslogCollector
from agent.errors import Oversized
from agent.export.base import Exporter
from agent.export.kinds import kind_of
from agent.export.syslog.relp import RelpTransport
from agent.export.syslog.rfc5424 import Formatter
from agent.export.syslog.transports import StreamTransport, Transport, UdpTransport, tls_context
from agent.oids import enterprise_number
from agent.syslog_facilities import FACILITIES


def make_formatter(settings: Settings, host: str) -> Formatter:
    pen = enterprise_number(settings.snmp.root)
    return Formatter(
        hostname=settings.syslog.hostname or host,
        pen=pen,
        procid=str(os.getpid()),
        facility=FACILITIES[settings.syslog.facility],
        max_size=settings.syslog.max_message_size,
        udp_max_size=settings.syslog.udp_max_message_size,
    )


def make_transport(collector: SyslogCollector) -> Transport:
    host, port = collector.host_port
    if collector.transport == "udp":
        return UdpTransport(host, port, collector.timeout)
    if collector.transport == "relp":
        return RelpTransport(host, port, collector.timeout)
    context_factory = None
    if collector.transport == "tls":

        def context_factory() -> ssl.SSLContext:
            return tls_context(
                ca_file=collector.ca_file,
                cert_file=collector.cert_file,
                key_file=collector.key_file,
                fingerprint=collector.fingerprint,
            )

    return StreamTransport(
        host,
        port,
        collector.timeout,
        # The config refuses "lf" for TLS (RFC 5425 section 4.3); never framed so here.
        lf_framing=collector.framing == "lf" and collector.transport == "tcp",
        context_factory=context_factory,
        server_name=collector.server_name or None,
        fingerprint=collector.fingerprint or None,
    )


class SyslogExporter(Exporter):
    def __init__(
        self,
        ports: ExporterPorts,
        settings: ExporterSettings,
        collector: SyslogCollector,
        formatter: Formatter,
        max_size: int | None = None,
    ) -> None:
        super().__init__(
            collector.target_name, ports, settings, min_severity=collector.min_severity
        )
        self.collector = collector
        self.formatter = formatter
        self.transport = make_transport(collector)
        self._kinds = set(collector.kinds)
        # UDP has its own, smaller limit (RFC 5426 section 3.2); the stream transports
        # share max_message_size.
        default = formatter.udp_max_size if collector.transport == "udp" else formatter.max_size
        self.max_size = max_size or default
        self.oversized = 0
        """Messages not sent because their header and structured data exceed max_size."""

    def accepts(self, notification: Notification) -> bool:
        return kind_of(notification) in self._kinds and super().accepts(notification)

    async def open(self) -> None:
        await self.transport.connect()

    async def close(self) -> None:
        await self.transport.close()

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        messages: list[bytes] = []
        seqs: list[int] = []
        for note in notifications:
            try:
                messages.append(self.formatter.format(note, self.max_size))
            except Oversized as exc:
                # Sending it again cannot make it fit: skipped, counted, and the
                # receiver sees the sequenceId gap.
                self.oversized += 1
                logger.warning("syslog collector {}: {}; not sent", self.name, exc)
                continue
            seqs.append(note.seq)

        def acknowledged(count: int) -> None:
            # RELP acknowledges message by message: each one is progress, kept if the
            # batch then fails, and it restarts the delivery's deadline.
            self.progress(seqs[count - 1])

        if messages:
            await self.transport.send(messages, acknowledged)
