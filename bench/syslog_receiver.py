"""A counting syslog receiver for bench/syslog.py (run as its own process).

    python bench/syslog_receiver.py MODE PORT COUNT

MODE: "octets" (RFC 6587 octet counting), "nul" (NUL-terminated, as Python's
SysLogHandler sends over TCP) or "relp" (acknowledges every syslog frame). Prints "ready",
then the seconds from the first byte to the COUNT-th message, and exits.
"""

from __future__ import annotations

import asyncio
import sys
import time


def octet_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete RFC 6587 octet-counted messages at the start of ``buffer``, and the
    bytes left for the next read."""
    messages = []
    position = 0
    while True:
        space = buffer.find(b" ", position)
        if space < 0:
            break
        size = int(buffer[position:space])
        if space + 1 + size > len(buffer):
            break
        messages.append(buffer[space + 1 : space + 1 + size])
        position = space + 1 + size
    return messages, buffer[position:]


async def main(mode: str, port: int, count: int) -> None:
    done = asyncio.Event()
    state = {"seen": 0, "first": 0.0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while not done.is_set():
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            if not state["first"]:
                state["first"] = time.perf_counter()
            buffer += chunk
            if mode == "nul":
                state["seen"] += buffer.count(b"\x00")
                buffer = buffer[buffer.rfind(b"\x00") + 1 :]
            elif mode == "octets":
                messages, buffer = octet_frames(buffer)
                state["seen"] += len(messages)
            else:
                position = 0
                answers = []
                while True:
                    first = buffer.find(b" ", position)
                    second = buffer.find(b" ", first + 1) if first >= 0 else -1
                    if second < 0:
                        break
                    end = second + 1
                    while end < len(buffer) and buffer[end : end + 1] not in b" \n":
                        end += 1
                    if end >= len(buffer):
                        break
                    size = int(buffer[second + 1 : end] or b"0")
                    stop = end + (1 + size if size else 0) + 1
                    if stop > len(buffer):
                        break
                    txnr = buffer[position:first]
                    command = buffer[first + 1 : second]
                    if command == b"syslog":
                        state["seen"] += 1
                    if command in (b"syslog", b"open", b"close"):
                        answers.append(txnr + b" rsp 6 200 OK\n")
                    position = stop
                buffer = buffer[position:]
                if answers:
                    writer.write(b"".join(answers))
                    await writer.drain()
            if state["seen"] >= count:
                done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    await done.wait()
    print(f"{time.perf_counter() - state['first']:.6f}", flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
