"""Syslog transports: UDP (RFC 5426), TCP (RFC 6587), TLS (RFC 5425) and RELP.

Each transport delivers a batch of messages in order or raises ExportError; the exporter
then reconnects with backoff and sends again from its cursor. What "delivered" means:

- UDP: handed to the kernel. Best effort: a datagram can be lost without notice.
- TCP / TLS: written and flushed to the socket. Messages still in flight when the
  collector dies can be lost (TCP has no application acknowledgement); the sequenceId
  in every message shows the gap, and the collector can fetch it from the log over SNMP.
- RELP: acknowledged by the collector (rsp 200) for every message: nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from agent.errors import ExportError

AckCallback = Callable[[int], None]
"""``on_ack(count)``: the first ``count`` messages of the batch are acknowledged."""


class Transport(ABC):
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    acknowledged = 0
    """Leading messages of the last send that the collector acknowledged (RELP only)."""

    @property
    def peer(self) -> str:
        return f"{self.host}:{self.port}"

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection. Raises: ExportError."""

    @abstractmethod
    async def send(self, messages: Sequence[bytes], on_ack: AckCallback | None = None) -> None:
        """Deliver ``messages`` in order (as this transport defines it).

        ``on_ack`` is called as the collector acknowledges them (RELP only; TCP, TLS and
        UDP have no acknowledgement, so the whole batch is one step of progress).

        Raises:
            ExportError: the batch is not delivered past what was acknowledged.
        """

    async def close(self) -> None:  # noqa: B027 - nothing to release for UDP
        """Release the connection."""


class _Datagrams(asyncio.DatagramProtocol):
    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable for an earlier datagram: UDP is best effort


class UdpTransport(Transport):
    MAX_DATAGRAM = 65507

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout)
        self._transport: asyncio.DatagramTransport | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                _Datagrams, remote_addr=(self.host, self.port)
            )
        except OSError as exc:
            raise ExportError(f"syslog over UDP to {self.peer}: {exc.strerror}") from exc

    async def send(self, messages: Sequence[bytes], on_ack: AckCallback | None = None) -> None:
        if self._transport is None:
            raise ExportError("UDP transport is not connected")
        for message in messages:
            self._transport.sendto(message[: self.MAX_DATAGRAM])
        await asyncio.sleep(0)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class StreamTransport(Transport):
    """TCP, or TLS with ``ssl_context``; octet-counting framing unless ``lf_framing``."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        *,
        lf_framing: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        server_name: str | None = None,
        fingerprint: str | None = None,
        context_factory: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        super().__init__(host, port, timeout)
        self.lf_framing = lf_framing
        self.ssl_context = ssl_context
        # Built at connect time: a missing CA file is a delivery failure that is retried
        # and reported, not a reason for the agent not to start.
        self.context_factory = context_factory
        self.server_name = server_name
        self.fingerprint = fingerprint
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def kind(self) -> str:
        return "TLS" if self.ssl_context or self.context_factory else "TCP"

    async def connect(self) -> None:
        if self.ssl_context is None and self.context_factory is not None:
            try:
                self.ssl_context = self.context_factory()
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ExportError(f"syslog over TLS to {self.peer}: {exc}") from exc
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=(self.server_name or self.host) if self.ssl_context else None,
                ),
                self.timeout,
            )
        except TimeoutError:
            raise ExportError(
                f"syslog over {self.kind} to {self.peer}: connect timed out"
            ) from None
        except ssl.SSLError as exc:
            raise ExportError(f"syslog over TLS to {self.peer}: {exc.reason or exc}") from exc
        except OSError as exc:
            raise ExportError(f"syslog over {self.kind} to {self.peer}: {exc.strerror}") from exc
        if self.fingerprint:
            self._check_fingerprint()

    def _check_fingerprint(self) -> None:
        assert self._writer is not None
        ssl_object = self._writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        seen = hashlib.sha256(der or b"").hexdigest()
        wanted = (self.fingerprint or "").lower().removeprefix("sha256:").replace(":", "")
        if seen != wanted:
            self._writer.close()
            self._writer = None
            raise ExportError(
                f"syslog over TLS to {self.peer}: server certificate fingerprint sha256:{seen} "
                "is not the pinned one"
            )

    def frame(self, message: bytes) -> bytes:
        if self.lf_framing:
            return message.replace(b"\n", b" ") + b"\n"
        return str(len(message)).encode() + b" " + message

    async def send(self, messages: Sequence[bytes], on_ack: AckCallback | None = None) -> None:
        if self._writer is None or self._reader is None:
            raise ExportError(f"{self.kind} transport is not connected")
        if self._reader.at_eof() or self._writer.is_closing():
            raise ExportError(f"syslog collector {self.peer} closed the connection")
        try:
            self._writer.write(b"".join(self.frame(m) for m in messages))
            await asyncio.wait_for(self._writer.drain(), self.timeout)
        except TimeoutError:
            raise ExportError(f"syslog collector {self.peer} is not reading") from None
        except (OSError, ConnectionError) as exc:
            raise ExportError(f"syslog over {self.kind} to {self.peer}: {exc}") from exc

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
                await asyncio.wait_for(self._writer.wait_closed(), 1)
            self._writer = None
            self._reader = None


def tls_context(
    *,
    ca_file: str = "",
    cert_file: str = "",
    key_file: str = "",
    fingerprint: str = "",
) -> ssl.SSLContext:
    """Server verification by CA file (hostname checked) or by a pinned fingerprint."""
    if fingerprint:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the certificate is checked by its fingerprint
    else:
        context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context
