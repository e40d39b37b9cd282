"""RELP, rsyslog's Reliable Event Logging Protocol (client side).

No maintained Python implementation exists (the one PyPI wrapper of librelp dates from
2014), so the few frames a sender needs are written here. A frame is
``TXNR SP COMMAND SP DATALEN [SP DATA] LF``. The client opens a session, sends each
message as a ``syslog`` command and waits for the ``rsp`` frame with the same
transaction number; only ``200`` counts as delivered. Each acknowledgement that extends
the leading run of acknowledged messages is reported as it arrives (``on_ack``), so the
exporter's progress-based deadline starts over during a long batch to a slow collector.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from agent.errors import ExportError
from agent.export.syslog.transports import AckCallback, Transport

OFFERS = b"relp_version=0\nrelp_software=provsync\ncommands=syslog"
MAX_TXNR = 999_999_999


def frame(txnr: int, command: bytes, data: bytes = b"") -> bytes:
    if data:
        return b"%d %s %d %s\n" % (txnr, command, len(data), data)
    return b"%d %s 0\n" % (txnr, command)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """(txnr, command, data) of the next frame."""
    txnr = int((await reader.readuntil(b" "))[:-1])
    command = (await reader.readuntil(b" "))[:-1]
    digits = b""
    while True:
        char = await reader.readexactly(1)
        if char in b" \n":
            break
        digits += char
        if len(digits) > 9:
            raise ExportError("RELP frame length is too long")
    size = int(digits or b"0")
    data = await reader.readexactly(size) if size else b""
    if size:
        await reader.readexactly(1)  # the LF trailer
    return txnr, command, data


class RelpTransport(Transport):
    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._txnr = 0

    def _next(self) -> int:
        self._txnr = self._txnr + 1 if self._txnr < MAX_TXNR else 1
        return self._txnr

    async def connect(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except TimeoutError:
            raise ExportError(f"RELP to {self.peer}: connect timed out") from None
        except OSError as exc:
            raise ExportError(f"RELP to {self.peer}: {exc.strerror}") from exc
        self._reader, self._writer = reader, writer
        self._txnr = 0
        txnr = self._next()
        writer.write(frame(txnr, b"open", OFFERS))
        await self._await_ok({txnr})

    async def _await_ok(
        self, pending: set[int], answered: Callable[[], None] | None = None
    ) -> None:
        assert self._reader is not None
        try:
            while pending:
                txnr, command, data = await asyncio.wait_for(read_frame(self._reader), self.timeout)
                if command == b"serverclose":
                    raise ExportError(f"RELP collector {self.peer} closed the session")
                if command != b"rsp":
                    continue
                if not data.startswith(b"200"):
                    reason = data.split(b"\n", 1)[0].decode(errors="replace")
                    raise ExportError(f"RELP collector {self.peer} refused: {reason}")
                if txnr in pending:
                    pending.discard(txnr)
                    if answered is not None:
                        answered()
        except TimeoutError:
            raise ExportError(f"RELP collector {self.peer} did not acknowledge in time") from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise ExportError(f"RELP collector {self.peer}: broken session ({exc})") from exc
        except (OSError, ConnectionError) as exc:
            raise ExportError(f"RELP to {self.peer}: {exc}") from exc

    async def send(self, messages: Sequence[bytes], on_ack: AckCallback | None = None) -> None:
        if self._writer is None:
            raise ExportError("RELP transport is not connected")
        pending: set[int] = set()
        chunks = []
        order: list[int] = []
        self.acknowledged = 0

        def answered() -> None:
            # Only the leading run counts: a message acknowledged after one that is not
            # yet is sent again if the batch fails.
            run = self.acknowledged
            while run < len(order) and order[run] not in pending:
                run += 1
            if run > self.acknowledged:
                self.acknowledged = run
                if on_ack is not None:
                    on_ack(run)

        for message in messages:
            txnr = self._next()
            pending.add(txnr)
            order.append(txnr)
            chunks.append(frame(txnr, b"syslog", message))
        try:
            self._writer.write(b"".join(chunks))
            await asyncio.wait_for(self._writer.drain(), self.timeout)
        except TimeoutError:
            raise ExportError(f"RELP collector {self.peer} is not reading") from None
        except (OSError, ConnectionError) as exc:
            raise ExportError(f"RELP to {self.peer}: {exc}") from exc
        await self._await_ok(pending, answered)

    async def close(self) -> None:
        if self._writer is None:
            return
        try:
            self._writer.write(frame(self._next(), b"close"))
            await asyncio.wait_for(self._writer.drain(), 1)
        except (TimeoutError, OSError, ConnectionError):
            pass
        self._writer.close()
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(self._writer.wait_closed(), 1)
        self._writer = None
        self._reader = None
