"""SNMP notifications on the BER fast path: one non-blocking UDP socket per receiver.

Traps go out in batches: :meth:`V2cSender.send_all` sends a whole list of datagrams in
one loop of ``send`` calls, with no await per trap (bench/snmp.py (b)). Nothing is dropped
quietly on the sending side:

- a full send buffer (``EAGAIN``) is waited out until the socket is writable, then the
  same datagram is sent (counted in :attr:`V2cSender.stalls`);
- ``ENOBUFS`` (no memory for the datagram) is waited out for a moment and retried
  (counted in :attr:`V2cSender.nobufs`);
- ``ECONNREFUSED`` reports an ICMP port unreachable for an *earlier* datagram, and Linux
  does not send the one that got it: it is sent again (counted in :attr:`V2cSender.refused`);
- a datagram too large for UDP (``EMSGSIZE``) can never be sent: it is skipped with a
  warning (counted in :attr:`V2cSender.oversized`) rather than stopping the target for ever;
- any other error (no route, a firewall) is :class:`SendError`: the exporter keeps what
  went out and retries the rest with backoff.

What the receiver does with a datagram is its own business: a trap is unacknowledged, and
one the receiver's buffer has no room for is lost there (an inform is retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import socket
from collections.abc import Sequence

from loguru import logger

from agent.config import parse_address
from agent.errors import ExportError, SendError
from agent.export.snmp import ber
from agent.export.snmp.notify import response_request_id

ENOBUFS_PAUSE = 0.001
"""Seconds to wait after ENOBUFS: the kernel gives no event for memory coming back."""
MAX_REFUSED = 16
"""ECONNREFUSED in a row on one datagram before the target counts as failing: each one
reports an earlier datagram, so more than a few means the peer refuses everything."""
READS_PER_WAKE = 16
"""Datagrams read per readable event: the loop is not monopolised by a flood."""


class V2cSender:
    """One non-blocking UDP socket connected to one receiver.

    Args:
        address: ``host[:port]`` of the receiver (port 162 by default).
        community: the v2c community (empty for a v3 trap target, whose messages are
            built by agent.export.snmp.v3trap and sent with :meth:`send_all`).
        sock: a connected datagram socket to use instead of opening one (tests).
    """

    def __init__(
        self, address: str, community: bytes, *, sock: socket.socket | None = None
    ) -> None:
        self.host, self.port = parse_address(address, default_port=162)
        self.community = community
        self._given = sock
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._next_id = random.randrange(1, 1 << 30)  # noqa: S311 - not a secret
        # Everything before the PDU is the same in every message to this receiver.
        self._head = ber.integer(1) + ber.octets(community)
        self.stalls = 0
        """Times the send buffer was full and the sender waited until it was writable."""
        self.nobufs = 0
        """Times the kernel had no buffer memory (ENOBUFS) and the send was retried."""
        self.refused = 0
        """Sends refused for an earlier datagram's ICMP port unreachable, and retried."""
        self.oversized = 0
        """Datagrams skipped because UDP cannot carry them (EMSGSIZE)."""

    async def open(self) -> None:
        if self._sock is not None:
            return
        loop = asyncio.get_running_loop()
        sock = self._given
        if sock is None:
            try:
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
                family, kind, proto, _, address = infos[0]
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setblocking(False)
                    sock.connect(address)  # UDP: no handshake, only the peer is fixed
                except OSError:
                    sock.close()
                    raise
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ExportError(f"cannot reach {self.host}:{self.port}: {reason}") from exc
        else:
            sock.setblocking(False)
        self._sock, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        sock, loop = self._sock, self._loop
        self._sock = self._loop = None
        if sock is None:
            return
        if loop is not None and not loop.is_closed():
            loop.remove_reader(sock.fileno())
            loop.remove_writer(sock.fileno())
        if sock is not self._given:
            sock.close()

    def _readable(self) -> None:
        """Inform answers; for a trap socket only ICMP errors and stray datagrams."""
        sock = self._sock
        if sock is None:
            return
        for _ in range(READS_PER_WAKE):
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ICMP port unreachable for an earlier datagram (it is read here or by
                # the next send): informs time out and retry, traps are unacknowledged.
                continue
            request_id = response_request_id(data)
            if request_id is not None:
                future = self._waiting.get(request_id)
                if future is not None and not future.done():
                    future.set_result(None)

    def _request_id(self) -> int:
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF or 1
        return self._next_id

    def message(self, pdu_tag: int, varbinds: bytes, request_id: int | None = None) -> bytes:
        """A v2c message around ``varbinds`` (the content of the VarBindList, as
        agent.export.snmp.notify.VarbindEncoder builds it)."""
        if request_id is None:
            request_id = self._request_id()
        pdu = ber.tlv(
            pdu_tag,
            ber.integer(request_id)
            + b"\x02\x01\x00\x02\x01\x00"  # error status, index
            + ber.tlv(ber.SEQUENCE, varbinds),
        )
        return ber.tlv(ber.SEQUENCE, self._head + pdu)

    async def send_all(self, messages: Sequence[bytes]) -> None:
        """Send every datagram, in order, in one loop; await only when the kernel says so.

        Raises:
            SendError: the socket is closed or failed; ``sent`` datagrams went out.
        """
        sock = self._sock
        if sock is None:
            raise SendError("trap sender is not open", 0)
        send = sock.send
        index = 0
        refused = 0
        count = len(messages)
        while index < count:
            try:
                send(messages[index])
            except (BlockingIOError, InterruptedError):
                self.stalls += 1
                await self._writable(sock)
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.nobufs += 1
                    await asyncio.sleep(ENOBUFS_PAUSE)
                    continue
                if exc.errno == errno.ECONNREFUSED and refused < MAX_REFUSED:
                    self.refused += 1
                    refused += 1
                    continue
                if exc.errno == errno.EMSGSIZE:
                    self.oversized += 1
                    logger.warning(
                        "notification to {}:{} skipped: {} octets is more than UDP carries",
                        self.host,
                        self.port,
                        len(messages[index]),
                    )
                else:
                    reason = exc.strerror or str(exc)
                    raise SendError(f"send to {self.host}:{self.port}: {reason}", index) from exc
            index += 1
            refused = 0

    async def _writable(self, sock: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        ready: asyncio.Future[None] = loop.create_future()
        fd = sock.fileno()

        def _ready() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_writer(fd, _ready)
        try:
            await ready
        finally:
            if self._sock is sock:
                loop.remove_writer(fd)

    async def inform(self, varbinds: bytes, timeout: float, retries: int) -> None:
        """Send until acknowledged; each retry waits twice as long as the one before.

        Raises:
            ExportError: not acknowledged after every try, or the socket failed.
        """
        if self._sock is None or self._loop is None:
            raise ExportError("inform sender is not open")
        request_id = self._request_id()
        message = self.message(ber.INFORM, varbinds, request_id)
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiting[request_id] = future
        try:
            wait = timeout
            for _ in range(retries + 1):
                await self.send_all((message,))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(future), wait)
                    return
                wait *= 2
            raise ExportError(
                f"inform to {self.host}:{self.port} not acknowledged after {retries + 1} tries"
            )
        finally:
            self._waiting.pop(request_id, None)
