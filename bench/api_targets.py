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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from syslog_receiver import octet_frames

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
            messages, buffer = octet_frames(buffer)
            for message in messages:
                start = message.find(SEQUENCE_ID)
                if start < 0:
                    self.seen.unidentified += 1
                    continue
                start += len(SEQUENCE_ID)
                self.seen.add(int(message[start : message.index(b'"', start)]), at)
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
    """Follow ``path`` like ``tail -F``, across rotations however fast they come.

    The exporter rotates by renaming: path.k -> path.k+1 (highest first), then path ->
    path.1. Our open file keeps its inode whatever its name, so after a rotation we read
    it to its end, open the current ``path``, and read whole the backups between the two
    (by inode, from a listing that held still for a moment: a cascade of renames in
    progress shows gaps and shifted names).
    """
    fd: int | None = None
    buffer = b""
    while fd is None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            await asyncio.sleep(0.001)
    inode = os.fstat(fd).st_ino
    # Files rotated out before we first looked (the data directory is new, so they are
    # this run's): read whole, oldest first, before ours.
    await _catch_up(path, None, inode, seen)
    while True:
        data = os.read(fd, 1 << 20)
        if data:
            buffer = _lines(buffer + data, seen)
            continue
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = inode
        if current == inode:
            await asyncio.sleep(0.001)
            continue
        # Rotated. What was written to ours between our last read and the rename is still
        # to read; its last line is then complete (the exporter writes whole lines).
        while data := os.read(fd, 1 << 20):
            buffer = _lines(buffer + data, seen)
        try:
            new = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # between two renames: look again
        os.close(fd)
        fd, old, inode, buffer = new, inode, os.fstat(new).st_ino, b""
        await _catch_up(path, old, inode, seen)


def _backups(path: Path) -> list[int]:
    """Inodes of path.1, path.2, ... in that order (newest first)."""
    found = []
    prefix = path.name + "."
    with os.scandir(path.parent) as entries:
        for entry in entries:
            suffix = entry.name[len(prefix) :]
            if entry.name.startswith(prefix) and suffix.isdigit():
                found.append((int(suffix), entry.inode()))
    return [inode for _, inode in sorted(found)]


async def _catch_up(path: Path, old: int | None, new: int, seen: Seen) -> None:
    """Read the backups newer than inode ``old`` (None: all) and older than ``new``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listing = _backups(path)
        await asyncio.sleep(0.002)
        if _backups(path) != listing:
            continue  # renames in progress
        # Newest first: skip down to the new file (it may have been rotated too), take
        # what follows until ours.
        chain = listing[listing.index(new) + 1 :] if new in listing else listing
        if old in chain:
            chain = chain[: chain.index(old)]
        contents = []
        for inode in reversed(chain):
            index = listing.index(inode) + 1
            try:
                with path.with_name(f"{path.name}.{index}").open("rb") as handle:
                    if os.fstat(handle.fileno()).st_ino != inode:
                        break  # renamed since the listing
                    contents.append(handle.read())
            except FileNotFoundError:
                break
        else:
            for content in contents:
                _lines(content, seen)
            return


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
