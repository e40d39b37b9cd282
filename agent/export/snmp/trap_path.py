"""The trap path of a target: SNMPv2c and SNMPv3 traps on the BER fast path.

Traps are best effort: the cursor moves once they are sent. A batch is encoded with what
does not change between notifications encoded once (agent.export.snmp.varbinds.
VarbindEncoder) and handed to the socket whole, :data:`CHUNK` at a time
(agent.export.snmp.v2c.V2cSender.send_all: a full send buffer is waited out, never
dropped), paced for receivers that cannot keep up (:class:`Pace`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from agent.alarms.records import Notification
from agent.config import SnmpTarget, SnmpUser
from agent.errors import SendError
from agent.export.snmp import ber
from agent.export.snmp.notify import Var
from agent.export.snmp.oids import MibOids
from agent.export.snmp.rate_limits import TokenBucket
from agent.export.snmp.v2c import V2cSender
from agent.export.snmp.v3trap import V3TrapEncoder
from agent.export.snmp.varbinds import VarbindEncoder

CHUNK = 256
"""Traps encoded and sent per turn of the event loop: the loop runs its other tasks (the
control API, the SNMP responder) between chunks, not between traps."""
PACE_BURST = 50
"""Traps a paced target may get at once: snmptrapd with its default receive buffer took
3,000 at 2,000/s in bursts of 50 without a loss here, and lost 15% in bursts of 200."""


class Pace(TokenBucket):
    """A token bucket: at most ``rate`` traps a second on average, ``burst`` at once.

    Measured need: the fast path sends a batch of 500 v2c traps in about 10 ms; snmptrapd
    with its default receive buffer logged 167-250 of them here (the old path, slower,
    got 490 through). A receiver that cannot keep up loses traps in its own buffer, where
    the sender cannot see it; pacing is the only thing the sender can do about it.
    """


class TrapPath:
    """The trap side of a target on the fast path: v2c, or v3 built by the agent itself.

    Args:
        sender: the socket to the receiver.
        varbinds: encodes each notification's varbinds.
        v3: wraps them in an SNMPv3 message; None for v2c.
        pace: at most that many traps a second (:class:`Pace`); None: as fast as the
            socket takes them.
    """

    def __init__(
        self,
        sender: V2cSender,
        varbinds: VarbindEncoder,
        v3: V3TrapEncoder | None = None,
        *,
        pace: Pace | None = None,
    ) -> None:
        self.sender = sender
        self._varbinds = varbinds
        self._v3 = v3
        self._pace = pace

    async def open(self) -> None:
        await self.sender.open()

    def close(self) -> None:
        self.sender.close()

    async def deliver(
        self,
        notifications: Sequence[Notification],
        uptime: Callable[[], int],
        progress: Callable[[int], None],
    ) -> None:
        """Send every notification in order, :data:`CHUNK` to a loop turn, and report
        each chunk sent with ``progress(seq)``.

        Raises:
            ExportError: the socket failed; ``progress`` has what went out before.
            ValueError: a notification cannot be encoded; the ones before it went out.
        """
        encode = self._varbinds.encode
        wrap = self._v3.wrap if self._v3 is not None else self._v2c_trap
        pace = self._pace
        count = len(notifications)
        start = 0
        while start < count:
            size = CHUNK
            if pace is not None:
                size = min(size, pace.allowance())
                if size < 1:
                    await asyncio.sleep(pace.wait())
                    continue
            # Encoded just before it is sent: sysUpTime is the time it went out.
            chunk = notifications[start : start + size]
            messages: list[bytes] = []
            try:
                for note in chunk:
                    messages.append(wrap(encode(note, uptime())))
            except Exception:
                # As if sent one by one: the ones before the bad one still go out.
                await self._send(chunk, messages, progress)
                raise
            await self._send(chunk, messages, progress)
            if pace is not None:
                pace.spend(len(messages))
            start += len(chunk)
            if start < count:
                await asyncio.sleep(0)

    async def send_one(self, varbinds: Sequence[Var]) -> None:
        """Send one notification that is not a log entry (a start trap), paced as the
        others.

        Raises:
            ExportError: the socket failed.
        """
        pace = self._pace
        if pace is not None:
            if pace.allowance() < 1:
                await asyncio.sleep(pace.wait())  # then one token is there again
            pace.spend(1)
        wrap = self._v3.wrap if self._v3 is not None else self._v2c_trap
        await self.sender.send_all([wrap(b"".join(v.ber() for v in varbinds))])

    def _v2c_trap(self, varbinds: bytes) -> bytes:
        return self.sender.message(ber.TRAP_V2, varbinds)

    async def _send(
        self,
        chunk: Sequence[Notification],
        messages: Sequence[bytes],
        progress: Callable[[int], None],
    ) -> None:
        if not messages:
            return
        try:
            await self.sender.send_all(messages)
        except SendError as exc:
            if exc.sent:
                progress(chunk[exc.sent - 1].seq)
            raise
        progress(chunk[len(messages) - 1].seq)


def trap_path(
    target: SnmpTarget,
    oids: MibOids,
    *,
    engine_id: bytes = b"",
    boots: int = 0,
    users: Sequence[SnmpUser] = (),
    max_rate: float | None = None,
    burst: int = PACE_BURST,
) -> TrapPath:
    """The fast trap path of a trap target (v2c, or v3 with the agent's engine ID and
    boots and the target's user among ``users``), paced to ``max_rate`` traps a second
    (default: the target's own ``max_rate``; 0: unpaced)."""
    rate = target.max_rate if max_rate is None else max_rate
    pace = Pace(rate, burst) if rate else None
    if target.version == "v2c":
        sender = V2cSender(target.address, target.community.get_secret_value().encode())
        return TrapPath(sender, VarbindEncoder(oids), pace=pace)
    # v3 traps: the agent is authoritative, so the fast path builds them itself.
    user = {u.name: u for u in users}[target.user]
    encoder = V3TrapEncoder(engine_id, boots, user)
    return TrapPath(V2cSender(target.address, b""), VarbindEncoder(oids), encoder, pace=pace)
