"""Notification targets: one exporter (with its own cursor) per [[snmp.targets]] entry.

SNMPv2c traps and informs and SNMPv3 traps go out on the BER fast path; SNMPv3 informs go
through pysnmp's NotificationOriginator (USM, engine discovery). Traps are best effort:
the cursor moves once they are sent. A batch of traps is encoded with what does not
change between notifications encoded once (agent.export.snmp.notify.VarbindEncoder) and
handed to the socket whole, :data:`CHUNK` at a time (agent.export.snmp.v2c.V2cSender.send_all:
a full send buffer is waited out, never dropped). Informs move the cursor only when the
receiver acknowledged them, one at a time; an unacknowledged inform fails the batch,
which is retried from the cursor with backoff, so a receiver that was down gets
everything, in order. No inform waits longer than its deadline (:func:`inform_deadline`),
whatever pysnmp does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as pysnmp_config
from pysnmp.entity.rfc3413 import ntforg
from pysnmp.error import PySnmpError
from pysnmp.proto import rfc1902

from agent.alarms.manager import AlarmManager
from agent.alarms.records import Notification
from agent.config import ExporterSettings, SnmpTarget, SnmpUser, parse_address
from agent.errors import ExportError, SendError
from agent.export.base import Exporter
from agent.export.kinds import kind_of
from agent.export.snmp import ber
from agent.export.snmp.inform_socket import ScreenedClientTransport, ScreenedClientTransport6
from agent.export.snmp.notify import Syntax, Var, VarbindEncoder, notification_vars
from agent.export.snmp.oids import MibOids
from agent.export.snmp.pysnmp_state import abandon_informs, forget_peer, keep_timer_running
from agent.export.snmp.service import SnmpService
from agent.export.snmp.start_traps import StartKind, ThisStart, start_vars
from agent.export.snmp.v2c import V2cSender
from agent.export.snmp.v3trap import V3TrapEncoder
from agent.inform_bounds import v2c_inform_wait, v3_inform_deadline

CLIENT_DOMAIN = (*udp.DOMAIN_NAME, 1000)
CLIENT_DOMAIN6 = (*udp6.DOMAIN_NAME, 1000)


def _pysnmp_value(var: Var) -> Any:
    if var.syntax is Syntax.OCTETS:
        return rfc1902.OctetString(var.value)
    if var.syntax is Syntax.INTEGER:
        return rfc1902.Integer32(var.value)
    if var.syntax is Syntax.UNSIGNED:
        return rfc1902.Unsigned32(var.value)
    if var.syntax is Syntax.TIMETICKS:
        return rfc1902.TimeTicks(var.value)
    return rfc1902.ObjectIdentifier(var.value)


inform_deadline = v3_inform_deadline
"""Seconds an SNMPv3 inform may take (agent.inform_bounds)."""

CHUNK = 256
"""Traps encoded and sent per turn of the event loop: the loop runs its other tasks (the
control API, the SNMP responder) between chunks, not between traps."""
PACE_BURST = 50
"""Traps a paced target may get at once: snmptrapd with its default receive buffer took
3,000 at 2,000/s in bursts of 50 without a loss here, and lost 15% in bursts of 200."""


class Pace:
    """A token bucket: at most ``rate`` traps a second on average, ``burst`` at once.

    Measured need: the fast path sends a batch of 500 v2c traps in about 10 ms; snmptrapd
    with its default receive buffer logged 167-250 of them here (the old path, slower,
    got 490 through). A receiver that cannot keep up loses traps in its own buffer, where
    the sender cannot see it; pacing is the only thing the sender can do about it.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a pace needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def allowance(self) -> int:
        """How many traps may go now."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self._tokens)

    def spend(self, count: int) -> None:
        self._tokens -= count

    def wait(self) -> float:
        """Seconds until the next trap may go."""
        return max(0.0, (1.0 - self._tokens) / self.rate)


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


class V3Sender:
    """A pysnmp notification target on the agent's SNMP engine."""

    def __init__(self, service: SnmpService, target: SnmpTarget, index: int) -> None:
        self.service = service
        self.target = target
        self.name = f"provsync-target-{index}"
        self._originator = ntforg.NotificationOriginator()
        self._configured = False
        self._warned = False
        host, port = parse_address(target.address, default_port=162)
        self._domain = CLIENT_DOMAIN6 if ":" in host else CLIENT_DOMAIN
        self._address = (host, port)
        self.deadline = inform_deadline(target.timeout, target.retries)
        """The longest :meth:`send` waits for an inform's answer."""

    def _configure(self) -> None:
        engine = self.service.engine
        target = self.target
        users = {u.name: u for u in self.service.snmp.users}
        user = users[target.user]
        domain = self._domain
        domains = self.service.client_domains
        if domain not in domains:
            # Screened: anyone can send to this socket (agent.export.snmp.inform_socket).
            # The service hashed each pass phrase once (about 1 MB of hashing each).
            known = self.service.known_users
            counters = self.service.counters
            transport = (
                ScreenedClientTransport6(known, counters)
                if domain == CLIENT_DOMAIN6
                else ScreenedClientTransport(known, counters)
            )
            pysnmp_config.add_transport(engine, domain, transport.open_client_mode())
            domains.add(domain)
        params, tag = f"{self.name}-params", f"{self.name}-tag"
        pysnmp_config.add_target_parameters(engine, params, user.name, user.level, mpModel=3)
        pysnmp_config.add_target_address(
            engine,
            self.name,
            domain,
            self._address,
            params,
            timeout=int(target.timeout * 100),
            retryCount=target.retries,
            tagList=tag,
        )
        pysnmp_config.add_notification_target(engine, self.name, params, tag, target.kind)
        self._configured = True

    async def send(self, varbinds: Sequence[Var]) -> None:
        """Send one notification; for an inform, wait (at most :attr:`deadline`) for the
        receiver's answer.

        Raises:
            ExportError: the inform was not acknowledged (or pysnmp refused to send it).
        """
        if not self._configured:
            self._configure()
        keep_timer_running(self.service.engine)
        # One future per notification: an answer pysnmp reports after this send gave up
        # finds its own (cancelled) future and is dropped; it cannot complete a later one.
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def _answer(
            snmp_engine: Any,
            handle: Any,
            indication: Any,
            status: Any,
            index: Any,
            var_binds: Any,
            future: asyncio.Future[Any],
        ) -> None:
            if not future.done():
                future.set_result(indication)

        pairs = [(v.oid, _pysnmp_value(v)) for v in varbinds]
        try:
            self._originator.send_varbinds(
                self.service.engine, self.name, None, b"", pairs, _answer, done
            )
        except PySnmpError as exc:
            raise ExportError(f"{self.target.kind} to {self.target.address}: {exc}") from exc
        if self.target.kind == "trap":
            return  # pysnmp reports nothing for traps: sent is all we know
        try:
            indication = await asyncio.wait_for(done, self.deadline)
        except asyncio.CancelledError:
            # The exporter's own deliver_timeout (or a stop) ended the wait first: the
            # receiver may have changed under pysnmp's cache just the same.
            self._abandon()
            raise
        except TimeoutError:
            self._abandon()
            restarted = keep_timer_running(self.service.engine)
            raise ExportError(
                f"inform to {self.target.address}: no answer from pysnmp in "
                f"{self.deadline:g}s" + ("; its timer had stopped" if restarted else "")
            ) from None
        if indication is not None:
            self._forget_peer()
            raise ExportError(f"inform to {self.target.address} failed: {indication}")

    def _abandon(self) -> None:
        """Given up on the inform: pysnmp must not send it again later (out of order)."""
        if abandon_informs(self.service.engine, self._originator) is None and not self._warned:
            self._warned = True
            logger.warning("pysnmp internals moved: an abandoned inform may be retransmitted")
        self._forget_peer()

    def _forget_peer(self) -> None:
        """Drop what pysnmp cached about the receiver's engine (ID, boots, time).

        A receiver that restarted comes back with a higher engine boots; pysnmp 7.1 keeps
        sending with the cached values and never gets an answer. Forgetting them makes
        the next inform rediscover the receiver.
        """
        forget_peer(self.service.engine, (self._domain, self._address))


class SnmpTargetExporter(Exporter):
    def __init__(
        self,
        manager: AlarmManager,
        settings: ExporterSettings,
        target: SnmpTarget,
        service: SnmpService,
        index: int,
    ) -> None:
        super().__init__(target.target_name, manager, settings, min_severity=target.min_severity)
        self.target = target
        self.service = service
        self._kinds = set(target.kinds)
        self._this_start = ThisStart.of(service.engine_id, service.boots)
        self._start_sent = False
        """This process's start trap went out (a retried batch does not send it again)."""
        self._varbinds = VarbindEncoder(service.oids)
        self._traps: TrapPath | None = None
        self._v2c: V2cSender | None = None  # v2c informs
        self._v3: V3Sender | None = None  # v3 informs
        if target.kind == "trap":
            self._traps = trap_path(
                target,
                service.oids,
                engine_id=bytes.fromhex(service.engine_id),
                boots=service.boots,
                users=service.snmp.users,
            )
        elif target.version == "v2c":
            self._v2c = V2cSender(target.address, target.community.get_secret_value().encode())
        else:
            self._v3 = V3Sender(service, target, index)

    def accepts(self, notification: Notification) -> bool:
        # This start's agent-started event always goes: it carries the start trap, which
        # follows no filter (agent.export.snmp.start_traps); its provsyncEvent does.
        if not self._start_sent and self._this_start.kind_of(notification) is not None:
            return True
        return self._wanted(notification)

    def _wanted(self, notification: Notification) -> bool:
        """The target's filter of provsync notifications (kinds, min_severity)."""
        return kind_of(notification) in self._kinds and super().accepts(notification)

    def least_deliver_timeout(self) -> float:
        target = self.target
        if target.kind != "inform":
            return 0.0
        if self._v3 is not None:
            return self._v3.deadline + 1.0
        # v2c: the first wait is the timeout, each retry waits twice as long.
        return v2c_inform_wait(target.timeout, target.retries) + 1.0

    def send_counters(self) -> dict[str, int]:
        """What the trap socket had to wait out or skip (agent.export.snmp.v2c)."""
        sender = self._traps.sender if self._traps is not None else self._v2c
        if sender is None:
            return {}
        return {
            "stalls": sender.stalls,
            "nobufs": sender.nobufs,
            "refused": sender.refused,
            "oversized": sender.oversized,
        }

    async def open(self) -> None:
        if self._traps is not None:
            await self._traps.open()
        elif self._v2c is not None:
            await self._v2c.open()

    async def close(self) -> None:
        if self._traps is not None:
            self._traps.close()
        elif self._v2c is not None:
            self._v2c.close()

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        if not self._start_sent:
            for index, note in enumerate(notifications):
                kind = self._this_start.kind_of(note)
                if kind is None:
                    continue
                # In the log's order: what came before, the start trap, then the event.
                await self._deliver_notes(notifications[:index])
                await self._send_start(kind)
                if not self._wanted(note):
                    self.progress(note.seq)
                    index += 1
                await self._deliver_notes(notifications[index:])
                return
        await self._deliver_notes(notifications)

    async def _send_start(self, kind: StartKind) -> None:
        """coldStart or warmStart, as this target's other notifications go (an inform
        waits for its acknowledgement)."""
        varbinds = start_vars(kind, self.service.uptime())
        if self._traps is not None:
            await self._traps.send_one(varbinds)
        elif self._v2c is not None:
            body = b"".join(v.ber() for v in varbinds)
            await self._v2c.inform(body, self.target.timeout, self.target.retries)
        else:
            assert self._v3 is not None
            await self._v3.send(varbinds)
        self._start_sent = True
        logger.debug("export target {}: {}Start sent", self.name, kind)

    async def _deliver_notes(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        if self._traps is not None:
            await self._traps.deliver(notifications, self.service.uptime, self.progress)
            return
        target = self.target
        for note in notifications:
            if self._v2c is not None:
                varbinds = self._varbinds.encode(note, self.service.uptime())
                await self._v2c.inform(varbinds, target.timeout, target.retries)
            else:
                assert self._v3 is not None
                await self._v3.send(
                    notification_vars(note, self.service.oids, self.service.uptime())
                )
            self.progress(note.seq)
