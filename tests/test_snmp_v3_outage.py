"""SNMPv3 informs across a long receiver outage, and a sender that never hangs.

pysnmp forgets a discovered receiver's engine ID 300 s after it learned it, counted in
ticks of its timer (3,000 of 0.1 s). The first test keeps a real snmptrapd down across
that expiry with a real agent sending informs to it; in the agent's process pysnmp's
engine-ID clock runs 20 times faster (``_fast_engine_id_expiry``, 15 s), the agent's own
code unchanged, so the test takes under a minute instead of seven. The in-process tests
drive the same expiry tick by tick.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from agent.config import SnmpTarget, SnmpUser
from agent.errors import ExportError
from agent.export.snmp.engine import add_user, create_engine
from agent.export.snmp.notify import Syntax, Var
from agent.export.snmp.v3auth import known_users
from agent.export.snmp.v3inform import V3Sender
from tests.conftest import AgentProcess
from tests.test_snmp_traps import ENGINE_ID, USER, Trapd, targets
from tests.waiting import wait_for

# pysnmp's engine-ID cache lifetime (proto/mpmod/rfc3412.py), counted in timer ticks of
# 0.1 s that run late on a busy machine: the outage ends well after it.
CACHE_EXPIRY = 300.0
SPEED_UP = 20
"""How much faster the engine-ID clock runs in the agent of the end-to-end test."""
SECOND_BATCH_AT = 330.0 / SPEED_UP
RETRY_WINDOW = 7.0
"""Seconds the receiver stays down after the late batch (pysnmp's expiry came due)."""
EXPIRED = "test: pysnmp's engine-ID expiry came due"


def _fast_engine_id_expiry() -> None:
    """In the agent's process (tests/forked.py): each tick of pysnmp's v3 message
    processing advances its engine-ID expiry clock ``SPEED_UP`` steps; nothing else of
    pysnmp's timing changes (retransmissions, USM time windows)."""
    from pysnmp.proto.mpmod.rfc3412 import SnmpV3MessageProcessingModel

    expire = SnmpV3MessageProcessingModel._SnmpV3MessageProcessingModel__expire_engines_info  # type: ignore[attr-defined]
    real_tick = SnmpV3MessageProcessingModel.receive_timer_tick

    def tick(self: SnmpV3MessageProcessingModel, engine: Any, now: float) -> None:
        queue = self._SnmpV3MessageProcessingModel__engineIdCacheExpQueue  # type: ignore[attr-defined]
        due = len(queue)
        try:
            for _ in range(SPEED_UP - 1):
                expire(self)
            real_tick(self, engine, now)
        finally:
            # Seen in the agent's log: the expiry came due (the agent may have forgotten
            # the receiver already; the due tick must still not end pysnmp's timer).
            if len(queue) < due:
                print(EXPIRED, flush=True)

    SnmpV3MessageProcessingModel.receive_timer_tick = tick  # type: ignore[method-assign]


def _status(agent: AgentProcess) -> dict[str, Any]:
    with agent.http() as http:
        status: dict[str, Any] = http.get("/api/v1/status").json()
    return status


def _exporter(agent: AgentProcess, name: str) -> dict[str, Any]:
    found: dict[str, Any] = {e["name"]: e for e in _status(agent)["exporters"]}[name]
    return found


def _raise(agent: AgentProcess, prefix: str, count: int) -> None:
    with agent.http() as http:
        for index in range(count):
            answer = http.post(
                "/api/v1/alarms", json={"type": "sync-failed", "resource": f"{prefix}{index}"}
            )
            assert answer.status_code in (200, 201), answer.text


def _wait_until(moment: float, agent: AgentProcess) -> None:
    """Let time pass (the pysnmp expiry is the condition) while the agent stays alive."""
    while time.monotonic() < moment:
        assert agent.proc is not None
        assert agent.proc.poll() is None, agent.log_text()[-3000:]
        time.sleep(min(5.0, max(0.0, moment - time.monotonic())))


@pytest.mark.slow
def test_v3_informs_resume_after_an_outage_across_the_engine_id_expiry(
    agent_factory: Any, trapd: Trapd
) -> None:
    snmp = {
        "engine_id": ENGINE_ID,
        "users": [USER],
        "targets": targets(trapd.port, ("v3", "inform")),
    }
    agent: AgentProcess = agent_factory({"snmp": snmp}).start(setup=_fast_engine_id_expiry)
    # The agent-started event is acknowledged: pysnmp has discovered snmptrapd's engine.
    assert len(trapd.wait_for(1, pdu="INFORM", version="v3")) == 1, trapd.text()[-2000:]
    discovered = time.monotonic()
    trapd.stop()
    _raise(agent, "early", 5)
    deadline = time.monotonic() + 30
    while _exporter(agent, "v3-inform")["failures"] == 0:
        assert time.monotonic() < deadline, "informs to a stopped receiver did not fail"
        time.sleep(0.2)
    _wait_until(discovered + SECOND_BATCH_AT, agent)
    # The late batch goes out after the expiry (ticks run late on a loaded machine).
    wait_for("the engine-ID expiry", lambda: EXPIRED in agent.log_text(), within=120)
    _raise(agent, "late", 5)
    failed_before = _exporter(agent, "v3-inform")["failures"]
    _wait_until(time.monotonic() + RETRY_WINDOW, agent)
    # After the expiry informs still time out on their own (about one attempt every two
    # seconds here), not only when a stuck wait is cut off by the exporter's deliver_timeout.
    retried = _exporter(agent, "v3-inform")["failures"] - failed_before
    assert retried >= RETRY_WINDOW / 7, retried
    expected = _status(agent)["last_seq"]
    assert expected >= 11
    trapd.start()
    got = trapd.wait_for(expected, pdu="INFORM", version="v3", within=120)
    seqs = [r["seq"] for r in got if r["seq"] <= expected]
    # At least once: one sent just before the receiver went away may come twice; apart
    # from that every sequence number arrives, in order.
    assert sorted(set(seqs)) == list(range(1, expected + 1)), (seqs, agent.log_text()[-3000:])
    assert seqs == sorted(seqs), seqs
    assert "Task exception was never retrieved" not in agent.log_text()


# ------------------------------------------------------------------ in process
TRAP_OID = (1, 3, 6, 1, 4, 1, 32473, 1, 0, 9)
VARBINDS = [
    Var((1, 3, 6, 1, 2, 1, 1, 3, 0), Syntax.TIMETICKS, 1),
    Var((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), Syntax.OID, TRAP_OID),
]


def _sender(port: int, *, timeout: float = 0.3, retries: int = 0) -> V3Sender:
    user = SnmpUser.model_validate(USER)
    engine = create_engine(ENGINE_ID, 1)
    add_user(engine, user)
    service: Any = SimpleNamespace(
        engine=engine,
        snmp=SimpleNamespace(users=[user]),
        client_domains=set(),
        counters={},
        known_users=known_users([user]),
    )
    target = SnmpTarget(
        address=f"127.0.0.1:{port}",
        version="v3",
        kind="inform",
        user="trapper",
        timeout=timeout,
        retries=retries,
    )
    return V3Sender(service, target, 0)


def _expire_engine_ids(sender: V3Sender) -> None:
    """Run pysnmp's v3 message-processing clock past its 300 s engine-ID expiry.

    These are the ticks the dispatcher's timer task gives it every 0.1 s; a tick that
    raises here would have ended that task in the agent."""
    engine = sender.service.engine
    processing = engine.message_processing_subsystems[3]
    resolution = engine.transport_dispatcher.get_timer_resolution()
    for _ in range(int(CACHE_EXPIRY / resolution) + 2):
        processing.receive_timer_tick(engine, time.time())


async def _close(sender: V3Sender) -> None:
    sender.service.engine.close_dispatcher()
    await asyncio.sleep(0)


def test_a_forgotten_receiver_survives_the_engine_id_expiry(trapd: Trapd) -> None:
    async def scenario() -> None:
        sender = _sender(trapd.port)
        try:
            await asyncio.wait_for(sender.send(VARBINDS), 10)
            trapd.stop()
            with pytest.raises(ExportError):
                await asyncio.wait_for(sender.send(VARBINDS), 10)
            _expire_engine_ids(sender)
            # Still down: pysnmp must time the inform out (its timers still run).
            with pytest.raises(ExportError):
                await asyncio.wait_for(sender.send(VARBINDS), 10)
            trapd.start()
            await asyncio.wait_for(sender.send(VARBINDS), 10)
        finally:
            await _close(sender)

    asyncio.run(scenario())
    assert len(trapd.wait_for(2, pdu="INFORM", version="v3")) == 2


def _stop_timer(sender: V3Sender) -> None:
    """End pysnmp's timer task the way an exception in a timer callback ends it."""
    dispatcher = sender.service.engine.transport_dispatcher
    dispatcher.loopingcall.cancel()
    dead: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    dead.set_exception(KeyError("engine-ID cache entry"))
    dispatcher.loopingcall = dead


def test_an_inform_pysnmp_never_answers_is_timed_out(trapd: Trapd) -> None:
    calls: list[tuple[Any, ...]] = []

    async def scenario() -> None:
        sender = _sender(trapd.port, timeout=0.3, retries=1)
        real = sender._originator.send_varbinds
        sender._originator.send_varbinds = lambda *args: calls.append(args)  # type: ignore[method-assign]
        try:
            started = time.monotonic()
            with pytest.raises(ExportError, match="no answer"):
                await asyncio.wait_for(sender.send(VARBINDS), 30)
            assert sender.deadline - 0.1 <= time.monotonic() - started <= sender.deadline + 1
            # The answer pysnmp might still report for it is dropped, not an error, and
            # does not count for the next inform.
            engine, *_, callback, context = calls[0]
            callback(engine, 1, None, 0, 0, (), context)
            sender._originator.send_varbinds = real  # type: ignore[method-assign]
            trapd.stop()
            with pytest.raises(ExportError, match="failed"):
                await asyncio.wait_for(sender.send(VARBINDS), 30)
        finally:
            await _close(sender)

    asyncio.run(scenario())


def test_a_stopped_pysnmp_timer_is_logged_once_and_restarted(trapd: Trapd) -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING")

    async def scenario() -> None:
        sender = _sender(trapd.port, timeout=0.3, retries=0)
        try:
            await asyncio.wait_for(sender.send(VARBINDS), 10)
            trapd.stop()
            _stop_timer(sender)
            # Without timer ticks pysnmp would never time this inform out.
            with pytest.raises(ExportError, match="failed"):
                await asyncio.wait_for(sender.send(VARBINDS), 10)
            with pytest.raises(ExportError, match="failed"):
                await asyncio.wait_for(sender.send(VARBINDS), 10)
            trapd.start()
            await asyncio.wait_for(sender.send(VARBINDS), 10)
        finally:
            await _close(sender)

    try:
        asyncio.run(scenario())
    finally:
        logger.remove(sink)
    assert len([line for line in lines if "pysnmp timer stopped" in line]) == 1, lines
    assert len(trapd.wait_for(2, pdu="INFORM", version="v3")) == 2


def _hostile_replies() -> list[tuple[bytes, str]]:
    """Datagrams nobody asked for at the inform socket, with the counter each must hit."""
    from tests.test_snmp_hostile import NO_AUTH, _oid_with_arc, _v2c, _v3

    return [
        (b"\x30" + b"\x82\xea\x60" + b"\x01" * 60_000, "inform_socket.oversized"),
        (_v2c(b"public", b"\xa2\x00"), "inform_socket.bad_versions"),
        (_v3(user=b"nobody", oid_body=_oid_with_arc(7_000)), "inform_socket.v3_unknown_user_names"),
        # The target's own user, a plaintext report with an OID pyasn1 decodes slowly:
        (
            _v3(user=b"trapper", flags=NO_AUTH, pdu_tag=0xA8, oid_body=_oid_with_arc(7_000)),
            "inform_socket.v3_discovery_too_big",
        ),
        (_v3(user=b"trapper", flags=NO_AUTH, pdu_tag=0xA0), "inform_socket.unexpected_pdus"),
        (
            _v3(user=b"trapper", key="notthekey1", pdu_tag=0xA2, flags=0x05),
            "inform_socket.v3_wrong_digests",
        ),
    ]


def test_the_inform_socket_drops_what_is_not_an_answer(trapd: Trapd) -> None:
    # M6: anything that reached pysnmp's client socket went to its pyasn1 decoder.
    decoded: list[bytes] = []

    async def scenario() -> None:
        sender = _sender(trapd.port)
        try:
            await asyncio.wait_for(sender.send(VARBINDS), 10)
            transport = sender.service.engine.transport_dispatcher.get_transport(sender._domain)
            # asyncio keeps the name from before the first send bound the socket.
            port = transport.transport.get_extra_info("socket").getsockname()[1]
            real = transport._callback_function
            transport._callback_function = lambda t, a, d: (decoded.append(d), real(t, a, d))
            loop = asyncio.get_running_loop()
            hostile, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port)
            )
            try:
                replies = _hostile_replies()
                for datagram, _counter in replies:
                    hostile.sendto(datagram)
                counters = sender.service.counters
                deadline = time.monotonic() + 5
                while sum(counters.values()) < len(replies):
                    assert time.monotonic() < deadline, (counters, len(decoded))
                    await asyncio.sleep(0.01)
            finally:
                hostile.close()
            assert counters == {counter: 1 for _, counter in replies}
            assert decoded == []
            # Answers still get through.
            await asyncio.wait_for(sender.send(VARBINDS), 10)
            assert decoded
        finally:
            await _close(sender)

    asyncio.run(scenario())


class _Silent(asyncio.DatagramProtocol):
    """A receiver that never answers: it only notes when each datagram came."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.arrivals.append(time.monotonic())


@pytest.mark.parametrize("how", ["cancelled", "timed-out"])
def test_an_abandoned_inform_is_not_retransmitted(how: str) -> None:
    # L1: after the agent gave up on an inform, pysnmp kept retransmitting it (and its
    # discovery), so the receiver could get it late, after the ones that followed.
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        silent = _Silent()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: silent, local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        sender = _sender(port, timeout=0.2, retries=4)
        sender.deadline = 0.5  # gives up well before pysnmp's own retries end
        try:
            if how == "cancelled":
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(sender.send(VARBINDS), 0.5)
            else:
                with pytest.raises(ExportError, match="no answer"):
                    await sender.send(VARBINDS)
            gave_up = time.monotonic()
            assert silent.arrivals, "nothing was sent"
            # pysnmp would retransmit every 0.2 s for about 2 s more (4 retries, and
            # up to 4 discovery retries): wait past that.
            await asyncio.sleep(2.5)
            return [at - gave_up for at in silent.arrivals if at > gave_up + 0.05]
        finally:
            transport.close()
            await _close(sender)

    late = asyncio.run(scenario())
    assert late == [], f"{len(late)} datagrams after the agent gave up"
