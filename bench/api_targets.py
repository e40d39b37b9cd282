"""The export targets of bench/api.py, in a process of their own.

A syslog TCP collector (RFC 6587 octet counting), an SNMP trap receiver (UDP) and a tail
of the agent's JSON lines file. Each notes, for every notification, its sequence number
and when it arrived (``time.monotonic()``: CLOCK_MONOTONIC, the same clock in every
process of this machine, so the bench compares it with when its answers arrived):

- syslog: the ``[meta sequenceId="N"]`` element of the RFC 5424 message;
- trap: the provsyncNotifySequence.0 varbind (its encoded OID is looked for in the
  datagram, the Unsigned32 after it is the sequence);
- JSON lines: the ``"seq"`` member each line starts with; the file is polled every
  millisecond (arrival times are up to 1 ms late) and followed across rotations.

    python bench/api_targets.py JSONL_PATH

Prints ``ready SYSLOG_PORT TRAP_PORT``, then reads commands on stdin, one a line:

- ``wait SEQ TIMEOUT STALL``: answers ``at T_FILE T_SYSLOG T_TRAP`` once every target has
  the notification SEQ (when each first had it; ``nan`` where it did not arrive within
  TIMEOUT seconds, or when the targets still without it received nothing for STALL);
- ``dump PATH``: writes ``{"file": [[seq, t], ...], "syslog": ..., "trap": ...,
  "unidentified": {...}}`` as JSON to PATH, answers ``dumped``.

It exits at the end of stdin.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.export.snmp import ber
from agent.export.snmp.oids import MibOids

TARGETS = ("file", "syslog", "trap")
SEQUENCE_OID = ber.oid(MibOids().instance("provsyncNotifySequence"))
SEQUENCE_ID = b'sequenceId="'


class Seen:
    """Arrivals at one target, in arrival order."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.times: list[float] = []
        self.unidentified = 0

    def add(self, seq: int, at: float) -> None:
        self.seqs.append(seq)
        self.times.append(at)

    def first_at(self, seq: int) -> float | None:
        """When a notification >= ``seq`` first arrived (None: not yet)."""
        found = None
        for index in range(len(self.seqs) - 1, -1, -1):
            if self.seqs[index] >= seq:
                found = self.times[index]
            elif found is not None:
                break
        return found


class SyslogServer:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while chunk := await reader.read(1 << 20):
            at = time.monotonic()
            buffer += chunk
            position = 0
            while True:
                space = buffer.find(b" ", position)
                if space < 0:
                    break
                size = int(buffer[position:space])
                if space + 1 + size > len(buffer):
                    break
                message = buffer[space + 1 : space + 1 + size]
                position = space + 1 + size
                start = message.find(SEQUENCE_ID)
                if start < 0:
                    self.seen.unidentified += 1
                    continue
                start += len(SEQUENCE_ID)
                self.seen.add(int(message[start : message.index(b'"', start)]), at)
            buffer = buffer[position:]
        writer.close()


class TrapReceiver(asyncio.DatagramProtocol):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def datagram_received(self, data: bytes, addr: object) -> None:
        at = time.monotonic()
        where = data.find(SEQUENCE_OID)
        if where < 0:
            self.seen.unidentified += 1
            return
        _tag, start, end = ber.header(data, where + len(SEQUENCE_OID))
        self.seen.add(int.from_bytes(data[start:end], "big"), at)


async def tail(path: Path, seen: Seen) -> None:
    """Follow ``path`` like ``tail -F``: to the end of a rotated file, then the new one."""
    fd: int | None = None
    inode = -1
    buffer = b""
    while True:
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                await asyncio.sleep(0.001)
                continue
            inode = os.fstat(fd).st_ino
        data = os.read(fd, 1 << 20)
        if data:
            buffer = _lines(buffer + data, seen)
            continue
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = -1
        if current != inode:
            # Rotated: what was written to the old file between our last read and the
            # rename is still to read; then its last line is complete (the exporter
            # writes whole lines) and the new file starts afresh.
            while data := os.read(fd, 1 << 20):
                buffer = _lines(buffer + data, seen)
            os.close(fd)
            fd = None
            buffer = b""
            continue
        await asyncio.sleep(0.001)


def _lines(buffer: bytes, seen: Seen) -> bytes:
    """Note the complete lines of ``buffer``; return the partial one at its end."""
    at = time.monotonic()
    lines = buffer.split(b"\n")
    for line in lines[:-1]:
        # '{"seq":N,...': the exporter writes seq first.
        comma = line.find(b",")
        if not line.startswith(b'{"seq":') or comma < 0:
            seen.unidentified += 1
            continue
        seen.add(int(line[7:comma]), at)
    return lines[-1]


async def main(jsonl: Path) -> None:
    loop = asyncio.get_running_loop()
    seen = {name: Seen() for name in TARGETS}
    server = await asyncio.start_server(SyslogServer(seen["syslog"]).handle, "127.0.0.1", 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # A burst of traps must not overflow the default 208 KB buffer while we parse.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind(("127.0.0.1", 0))
    transport, _ = await loop.create_datagram_endpoint(
        lambda: TrapReceiver(seen["trap"]), sock=sock
    )
    tailer = asyncio.create_task(tail(jsonl, seen["file"]))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    syslog_port = server.sockets[0].getsockname()[1]
    print(f"ready {syslog_port} {sock.getsockname()[1]}", flush=True)
    while line := await reader.readline():
        command, *args = line.decode().split()
        if command == "wait":
            seq, deadline, stall = int(args[0]), time.monotonic() + float(args[1]), float(args[2])
            found: dict[str, float | None] = dict.fromkeys(TARGETS)
            progress, moved = -1, time.monotonic()
            while time.monotonic() < deadline:
                found = {name: seen[name].first_at(seq) for name in TARGETS}
                missing = [name for name, at in found.items() if at is None]
                if not missing:
                    break
                # A target that receives nothing for `stall` seconds is not catching up
                # (it is down, or the agent is stuck): say so now rather than at the deadline.
                now = sum(len(seen[name].seqs) for name in missing)
                if now != progress:
                    progress, moved = now, time.monotonic()
                elif time.monotonic() - moved > stall:
                    break
                await asyncio.sleep(0.002)
            values = [math.nan if v is None else v for v in found.values()]
            print("at " + " ".join(repr(v) for v in values), flush=True)
        elif command == "dump":
            document = {name: list(zip(s.seqs, s.times, strict=True)) for name, s in seen.items()}
            document["unidentified"] = {n: s.unidentified for n, s in seen.items()}  # type: ignore[assignment]
            await asyncio.to_thread(Path(args[0]).write_text, json.dumps(document))
            print("dumped", flush=True)
    tailer.cancel()
    transport.close()
    server.close()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not Linux
        asyncio.run(main(Path(sys.argv[1])))
    else:
        uvloop.run(main(Path(sys.argv[1])))
