"""A loguru sink that sends the agent's own log to syslog, apart from the alarm stream.

APP-NAME ``provsync-agent`` and MSGID ``LOG`` tell these lines from notifications
(APP-NAME ``provsync``). UDP, best effort: logging must never block or fail the agent.
Each datagram is at most ``max_size`` octets (``[syslog] udp_max_message_size``: RFC 5426
section 3.2), its MSG cut on a character boundary.
"""

from __future__ import annotations

import contextlib
import os
import socket
from datetime import UTC
from typing import Any

from agent.config import parse_address
from agent.export.syslog.rfc5424 import BOM, header_field

LEVELS = {"TRACE": 7, "DEBUG": 7, "INFO": 6, "SUCCESS": 5, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


class SyslogSink:
    def __init__(self, address: str, hostname: str, facility: int, max_size: int = 2048) -> None:
        host, port = parse_address(address, default_port=514)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._target = (host, port)
        self._hostname = header_field(hostname, 255)
        self._facility = facility
        self._max_size = max_size
        self._procid = str(os.getpid())

    def __call__(self, message: Any) -> None:
        record = message.record
        severity = LEVELS.get(record["level"].name, 6)
        timestamp = record["time"].astimezone(UTC).isoformat(timespec="microseconds")
        head = (
            f"<{self._facility * 8 + severity}>1 {timestamp.replace('+00:00', 'Z')} "
            f"{self._hostname} provsync-agent {self._procid} LOG - "
        ).encode()
        text = f"{record['name']}:{record['line']} {record['message']}".encode()
        room = self._max_size - len(head) - len(BOM)
        if len(text) > room:
            # Cut on a character boundary: MSG after the BOM must stay valid UTF-8.
            text = text[: max(room, 0)].decode("utf-8", errors="ignore").encode()
        data = head + BOM + text
        # A missing collector must not disturb the agent.
        with contextlib.suppress(OSError):
            self._socket.sendto(data, self._target)

    def close(self) -> None:
        self._socket.close()
