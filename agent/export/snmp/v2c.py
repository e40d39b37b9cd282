"""SNMPv2c traps and informs on the BER fast path, over asyncio UDP."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from agent.config import parse_address
from agent.errors import ExportError
from agent.export.snmp import ber
from agent.export.snmp.notify import Var, response_request_id, v2c_message


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[None]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        request_id = response_request_id(data)
        if request_id is not None:
            future = self.waiting.get(request_id)
            if future is not None and not future.done():
                future.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for an earlier datagram: informs time out and retry.
        pass


class V2cSender:
    """One UDP socket to one receiver."""

    def __init__(self, address: str, community: bytes) -> None:
        self.host, self.port = parse_address(address, default_port=162)
        self.community = community
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol = _Receiver()
        self._next_id = random.randrange(1, 1 << 30)  # noqa: S311 - not a secret

    async def open(self) -> None:
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self._protocol, remote_addr=(self.host, self.port)
            )
        except OSError as exc:
            raise ExportError(f"cannot reach {self.host}:{self.port}: {exc.strerror}") from exc
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _request_id(self) -> int:
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF or 1
        return self._next_id

    def trap(self, varbinds: Sequence[Var]) -> None:
        self.send(v2c_message(self.community, ber.TRAP_V2, self._request_id(), varbinds))

    def send(self, message: bytes) -> None:
        """One datagram to the receiver (a trap: nothing comes back)."""
        if self._transport is None:
            raise ExportError("trap sender is not open")
        self._transport.sendto(message)

    async def inform(self, varbinds: Sequence[Var], timeout: float, retries: int) -> None:
        """Send until acknowledged; each retry waits twice as long as the one before."""
        if self._transport is None:
            raise ExportError("inform sender is not open")
        request_id = self._request_id()
        message = v2c_message(self.community, ber.INFORM, request_id, varbinds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._protocol.waiting[request_id] = future
        try:
            wait = timeout
            for _ in range(retries + 1):
                self._transport.sendto(message)
                try:
                    await asyncio.wait_for(asyncio.shield(future), wait)
                    return
                except TimeoutError:
                    wait *= 2
            raise ExportError(
                f"inform to {self.host}:{self.port} not acknowledged after {retries + 1} tries"
            )
        finally:
            self._protocol.waiting.pop(request_id, None)
