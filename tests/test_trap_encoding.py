"""The fast trap path: the same bytes as the varbind-by-varbind encoder, and no trap lost
quietly on the sending side (a full send buffer, ENOBUFS, ICMP refusals, oversize)."""

from __future__ import annotations

import asyncio
import errno
import hmac
import select
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from pyasn1.codec.ber import decoder
from pysnmp.proto import api

from agent.alarms.records import Notification, NotificationKind
from agent.config import SnmpUser, settings_from_dict
from agent.errors import ExportError, SendError
from agent.export.snmp import ber
from agent.export.snmp.notify import Var, notification_vars, v2c_message
from agent.export.snmp.oids import NOTIFY_OBJECTS, MibOids
from agent.export.snmp.trap_path import CHUNK, Pace, TrapPath
from agent.export.snmp.v2c import V2cSender
from agent.export.snmp.v3trap import FLAG_AUTH, FLAG_PRIV, MAX_SIZE, V3TrapEncoder
from agent.export.snmp.varbinds import VarbindEncoder
from tests import mib_syntax
from tests.conftest import free_udp_port

T0 = datetime(2024, 5, 17, 8, 30, 15, 420_000, tzinfo=UTC)
PAYLOAD = {
    "type_name": "Element Unreachable",
    "event_type": "communicationsAlarm",
    "probable_cause": "communicationsSubsystemFailure",
}
ACKED = {
    **PAYLOAD,
    "count": 1,
    "operator_state": "acknowledged",
    "resolution": "provsync elements show cm1 | GET /api/v1/elements/cm1",
}


def note(
    seq: int, kind: NotificationKind = NotificationKind.ALARM_RAISED, **fields: Any
) -> Notification:
    values: dict[str, Any] = {
        "seq": seq,
        "at": T0,
        "kind": kind,
        "alarm_id": seq,
        "type_id": "element-unreachable",
        "resource": f"cm{seq}",
        "qualifier": "",
        "severity": "major",
        "text": "no answer from the call server",
        "raise_seq": 0,
        "payload": dict(PAYLOAD),
    }
    values.update(fields)
    return Notification(**values)


def every_kind() -> list[Notification]:
    """Raises, changes, clears, events and heartbeats, with the texts and payloads that
    change the encoding: lengths across the one / two / three octet length forms, unicode,
    missing payload keys, odd payload values, times that repeat and times that do not."""
    resolution = {**PAYLOAD, "resolution": "provsync elements show cm1 | GET /api/v1/elements/cm1"}
    return [
        note(1),
        note(2, payload=resolution),
        note(
            3, NotificationKind.ALARM_CHANGED, severity="critical", raise_seq=1, payload=resolution
        ),
        note(4, NotificationKind.ALARM_CLEARED, severity="cleared", raise_seq=1),
        note(
            5,
            NotificationKind.EVENT,
            alarm_id=0,
            type_id="agent-started",
            severity="indeterminate",
            payload={"type_name": "Agent Started", "event_type": "other", "probable_cause": ""},
            at=T0 + timedelta(seconds=1),
        ),
        note(6, text="x" * 127),  # the longest one-octet length
        note(7, text="y" * 128, at=T0 + timedelta(milliseconds=50)),  # same tenth of a second
        note(8, text="z" * 300, resource="r" * 200),
        note(9, text="é" * 40_000),  # cut to 255 octets, inside a character: 252 + marker
        note(
            10,
            text="Störung der Vermittlung — 呼叫服务器无应答 🚨",
            resource="Zürich-交换机",
            payload={**PAYLOAD, "type_name": "Élément injoignable"},
        ),
        note(11, payload={}),  # defaults: type id as name, event type other, no cause
        note(
            12,
            payload={
                "type_name": 7,
                "event_type": "qualityOfServiceAlarm",
                "probable_cause": 1.5,
                "resolution": ["restart it"],
            },
        ),
        # True and 7 hash apart, 1 would not.
        note(
            13,
            payload={
                "type_name": True,
                "event_type": "qualityOfServiceAlarm",
                "probable_cause": 1.5,
            },
        ),
        note(
            14,
            NotificationKind.ALARM_RAISED,
            severity="warning",
            alarm_id=2**32 - 1,
            at=datetime(2024, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
        ),
        note(
            15,
            NotificationKind.EVENT,
            alarm_id=0,
            type_id="heartbeat",
            severity="indeterminate",
            payload={
                "type_name": "Heartbeat",
                "event_type": "other",
                "details": {"active_alarms": 42},
            },
        ),
        note(16, NotificationKind.ALARM_CLEARED, severity="cleared", raise_seq=2**31, at=T0),
        note(
            2**31 + 17,
            NotificationKind.EVENT,
            alarm_id=0,
            type_id="export-gap",
            severity="warning",
            payload={
                "type_name": "Export Gap",
                "event_type": "other",
                "probable_cause": "",
                "details": {"target": "t", "first_lost": 1},
            },
        ),
        # What revision 202612020000Z appends: qualifiers, cause codes, operator states.
        note(
            18,
            qualifier="primary",
            payload={**ACKED, "change": "acknowledged", "operator": "alice"},
        ),
        note(
            19,
            NotificationKind.ALARM_CHANGED,
            raise_seq=18,
            qualifier="q" * 300,
            payload={**ACKED, "change": "acknowledged", "operator": "é" * 100},
        ),
        note(
            20,
            NotificationKind.ALARM_CHANGED,
            raise_seq=18,
            payload={
                **ACKED,
                "change": "unacknowledged",
                "operator": "bob",
                "operator_state": "none",
            },
        ),
        # A later change that names the acker.
        note(
            21, NotificationKind.ALARM_CHANGED, raise_seq=18, payload={**ACKED, "ack_by": "carol"}
        ),
        note(
            22,
            NotificationKind.ALARM_CLEARED,
            severity="cleared",
            raise_seq=18,
            qualifier="Zürich-交换机",
            payload=ACKED,
        ),
        note(
            23,
            text="x" * 8400,
            resource="é" * 255,
            type_id="",
            payload={
                **PAYLOAD,
                "type_name": "n" * 300,
                "probable_cause": "cabinetDoorOpen",
                "resolution": "→" * 2800,
                "operator_state": ["odd"],
            },
        ),
        note(
            24,
            NotificationKind.ALARM_CHANGED,
            raise_seq=1,
            qualifier="🚨" * 100,
            payload={
                **PAYLOAD,
                "probable_cause": "c" * 100,
                "operator_state": "acknowledged",
                "change": "acknowledged",
                "operator": None,
            },
        ),
        note(
            25,
            NotificationKind.EVENT,
            alarm_id=0,
            type_id="agent-started",
            qualifier="",
            severity="indeterminate",
            payload={
                "type_name": "Agent Started",
                "event_type": "other",
                "probable_cause": "other",
            },
        ),
    ]


@pytest.mark.parametrize("root", [(1, 3, 6, 1, 4, 1, 32473, 1), (1, 3, 6, 1, 4, 1, 99999, 7, 300)])
def test_v2c_traps_and_informs_are_byte_for_byte_the_varbind_encoder(root: tuple[int, ...]) -> None:
    oids = MibOids(root)
    encoder = VarbindEncoder(oids)
    sender = V2cSender("127.0.0.1:162", b"public")
    notes = every_kind()
    for round_ in range(2):  # the second time from the caches
        for index, item in enumerate(notes):
            uptime = 1000 * index + round_ * 2**31
            old = notification_vars(item, oids, uptime)
            for tag in (ber.TRAP_V2, ber.INFORM):
                expected = v2c_message(b"public", tag, 4242 + index, old)
                got = sender.message(tag, encoder.encode(item, uptime), 4242 + index)
                assert got == expected, (item.seq, tag)


def _decoded(message: bytes) -> tuple[int, list[tuple[str, str, str]]]:
    """(request-id, [(OID, type, value)]) as pysnmp reads the message."""
    pmod = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    decoded, rest = decoder.decode(message, asn1Spec=pmod.Message())
    assert rest == b""
    pdu = pmod.apiMessage.get_pdu(decoded)
    varbinds = [
        (str(oid), type(value).__name__, value.prettyPrint())
        for oid, value in pmod.apiPDU.get_varbinds(pdu)
    ]
    return int(pmod.apiPDU.get_request_id(pdu)), varbinds


def test_pysnmp_decodes_the_same_varbinds_in_the_same_order() -> None:
    oids = MibOids()
    encoder = VarbindEncoder(oids)
    sender = V2cSender("127.0.0.1:162", b"public")
    for item in every_kind():
        old = v2c_message(b"public", ber.TRAP_V2, 1, notification_vars(item, oids, 77))
        new = sender.message(ber.TRAP_V2, encoder.encode(item, 77))  # its own request-id
        old_id, old_varbinds = _decoded(old)
        new_id, new_varbinds = _decoded(new)
        assert new_varbinds == old_varbinds
        assert new_varbinds[0][0] == "1.3.6.1.2.1.1.3.0"
        assert new_varbinds[0][2] == "77"
        assert old_id == 1
        assert new_id != 1


def test_what_the_varbind_encoder_refuses_it_still_refuses() -> None:
    oids = MibOids()
    encoder = VarbindEncoder(oids)
    for bad in (
        note(1, severity="dreadful"),
        note(2, payload={"event_type": "nonsense"}),
        note(3, alarm_id=-1),
    ):
        with pytest.raises(ValueError):
            b"".join(v.ber() for v in notification_vars(bad, oids, 0))
        with pytest.raises(ValueError):
            encoder.encode(bad, 0)


def _name_of(oids: MibOids) -> dict[tuple[int, ...], str]:
    names = (*NOTIFY_OBJECTS, "provsyncLastSequence", "provsyncActiveAlarms")
    return {oids.instance(name): name for name in names}


def _wire(var: Var) -> tuple[tuple[int, ...], bytes]:
    """(OID, value TLV) of the VarBind as it goes out."""
    encoded = var.ber()
    _, start, _ = ber.header(encoded, 0)
    _, oid_start, oid_end = ber.header(encoded, start)
    return ber.decode_oid(encoded[oid_start:oid_end]), encoded[oid_end:]


@pytest.mark.parametrize("root", [(1, 3, 6, 1, 4, 1, 32473, 1), (1, 3, 6, 1, 4, 1, 99999, 7, 300)])
def test_every_varbind_sent_fits_its_mib_syntax(root: tuple[int, ...]) -> None:
    oids = MibOids(root)
    name_of = _name_of(oids)
    for item in every_kind():
        for var in notification_vars(item, oids, 5)[2:]:
            oid, value = _wire(var)
            mib_syntax.check(name_of[oid], value)


def _names(item: Notification) -> list[str]:
    oids = MibOids()
    name_of = _name_of(oids)
    return [name_of[var.oid] for var in notification_vars(item, oids, 0)[2:]]


def test_appended_varbinds_follow_the_objects_clause_in_a_fixed_order() -> None:
    objects = list(NOTIFY_OBJECTS[:10])
    first, cause = ["provsyncNotifyQualifier", "provsyncNotifyProbableCauseCode"], []
    ack = ["provsyncNotifyOperatorState", "provsyncNotifyAckBy"]
    raise_seq, resolution = ["provsyncNotifyRaiseSequence"], ["provsyncNotifyResolution"]
    assert _names(note(1)) == objects + resolution + first + cause + ack
    assert _names(note(2, NotificationKind.ALARM_CHANGED, raise_seq=1)) == (
        objects + raise_seq + resolution + first + ack
    )
    assert _names(note(3, NotificationKind.ALARM_CLEARED, raise_seq=1)) == (
        objects + raise_seq + first
    )
    assert _names(note(4, NotificationKind.EVENT, alarm_id=0)) == objects + first


def _values(item: Notification) -> dict[str, bytes | int | tuple[int, ...]]:
    oids = MibOids()
    name_of = _name_of(oids)
    return {name_of[var.oid]: var.value for var in notification_vars(item, oids, 0)[2:]}


def test_appended_values() -> None:
    acked = _values(
        note(
            19,
            NotificationKind.ALARM_CHANGED,
            raise_seq=18,
            qualifier="primary",
            payload={**ACKED, "change": "acknowledged", "operator": "alice"},
        )
    )
    assert acked["provsyncNotifyQualifier"] == b"primary"
    assert acked["provsyncNotifyProbableCauseCode"] == 505  # communicationsSubsystemFailure
    assert acked["provsyncNotifyOperatorState"] == 2
    assert acked["provsyncNotifyAckBy"] == b"alice"
    withdrawn = _values(
        note(
            20,
            NotificationKind.ALARM_CHANGED,
            raise_seq=18,
            payload={
                **ACKED,
                "change": "unacknowledged",
                "operator": "alice",
                "operator_state": "none",
            },
        )
    )
    assert (withdrawn["provsyncNotifyOperatorState"], withdrawn["provsyncNotifyAckBy"]) == (1, b"")
    odd = _values(
        note(
            23,
            text="x" * 8400,
            type_id="",
            qualifier="é" * 200,
            payload={**PAYLOAD, "probable_cause": "cabinetDoorOpen", "resolution": "r" * 8400},
        )
    )
    assert odd["provsyncNotifyTypeId"] == b"-"
    assert odd["provsyncNotifyText"] == b"x" * 252 + "…".encode()
    assert odd["provsyncNotifyResolution"] == b"r" * 252 + "…".encode()
    assert odd["provsyncNotifyQualifier"] == "é".encode() * 126 + "…".encode()
    assert odd["provsyncNotifyProbableCauseCode"] == 1024  # not IANA's: other
    assert odd["provsyncNotifyOperatorState"] == 1  # not said: none
    assert odd["provsyncNotifyAckBy"] == b""


def test_an_acknowledgement_is_not_the_change_before_it(tmp_path: Any) -> None:
    """Raised, changed (severity), acknowledged, unacknowledged through the real manager:
    each provsyncAlarmChanged differs from the one before it in what it says, not only in
    its sequence number and time, and both encoders agree on each."""
    from agent.alarms import queries
    from agent.alarms.catalog import Catalog
    from agent.alarms.manager import AlarmManager
    from agent.store.database import Store

    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    store.open()
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    try:

        async def scenario() -> None:
            raised = await manager.raise_alarm("element-unreachable", "cm1", qualifier="primary")
            await manager.raise_alarm(
                "element-unreachable", "cm1", qualifier="primary", severity="critical"
            )
            await manager.acknowledge(raised.alarm["id"], by="alice")
            await manager.acknowledge(raised.alarm["id"], acknowledge=False, by="alice")

        _run(scenario())
        notes = queries.read_log(manager.engine, 0, 100)
    finally:
        manager.stop()
        store.close()
    assert [n.kind for n in notes] == [NotificationKind.ALARM_RAISED] + [
        NotificationKind.ALARM_CHANGED
    ] * 3
    oids = MibOids()
    encoder = VarbindEncoder(oids)
    said = []
    for item in notes:
        assert encoder.encode(item, 9) == b"".join(
            v.ber() for v in notification_vars(item, oids, 9)
        )
        values = _values(item)
        del values["provsyncNotifySequence"], values["provsyncNotifyTime"]
        said.append(values)
    raised, changed, acked, unacked = said
    assert raised["provsyncNotifyQualifier"] == b"primary"
    assert changed != acked != unacked
    assert (changed["provsyncNotifyOperatorState"], changed["provsyncNotifyAckBy"]) == (1, b"")
    assert (acked["provsyncNotifyOperatorState"], acked["provsyncNotifyAckBy"]) == (2, b"alice")
    assert (unacked["provsyncNotifyOperatorState"], unacked["provsyncNotifyAckBy"]) == (1, b"")
    # Everything else is the alarm's, the same in all three.
    same = {
        k: v
        for k, v in acked.items()
        if k not in ("provsyncNotifyOperatorState", "provsyncNotifyAckBy")
    }
    assert same == {k: v for k, v in changed.items() if k in same}


# ------------------------------------------------------------------------------- SNMPv3
def _old_v3_encode(enc: V3TrapEncoder, varbinds: Sequence[Var]) -> bytes:
    """The v3 encoder as it was before the header parts were prepared once (the
    reference): every field encoded per message, the MAC spliced in afterwards."""
    enc._message_id = (enc._message_id + 1) & 0x7FFFFFFF
    enc._request_id = (enc._request_id + 1) & 0x7FFFFFFF
    pdu = ber.tlv(
        ber.TRAP_V2,
        ber.integer(enc._request_id)
        + ber.integer(0)
        + ber.integer(0)
        + ber.tlv(ber.SEQUENCE, b"".join(v.ber() for v in varbinds)),
    )
    scoped = ber.sequence(ber.octets(enc.engine_id), ber.octets(b""), pdu)
    engine_time = enc.engine_time()
    flags = FLAG_AUTH
    if enc._priv_key is not None:
        flags |= FLAG_PRIV
        enc._salt = (enc._salt + 1) & 0xFFFFFFFFFFFFFFFF
        salt = enc._salt.to_bytes(8, "big")
        iv = enc.boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
        encryptor = Cipher(algorithms.AES(enc._priv_key), CFB(iv)).encryptor()
        data = ber.octets(encryptor.update(scoped) + encryptor.finalize())
    else:
        salt = b""
        data = scoped
    usm_prefix = (
        ber.octets(enc.engine_id)
        + ber.integer(enc.boots)
        + ber.integer(engine_time)
        + ber.octets(enc.user)
        + bytes((ber.OCTET_STRING, enc._mac_length))
    )
    usm_body = usm_prefix + bytes(enc._mac_length) + ber.octets(salt)
    usm = ber.tlv(ber.SEQUENCE, usm_body)
    header = ber.sequence(
        ber.integer(enc._message_id),
        ber.integer(MAX_SIZE),
        ber.octets(bytes((flags,))),
        ber.integer(3),
    )
    head = ber.integer(3) + header
    security = ber.octets(usm)
    whole = ber.tlv(ber.SEQUENCE, head + security + data)
    outer = len(whole) - len(head) - len(security) - len(data)
    usm_headers = (len(security) - len(usm)) + (len(usm) - len(usm_body))
    at = outer + len(head) + usm_headers + len(usm_prefix)
    mac = hmac.new(enc._auth_key, whole, enc._digest).digest()[: enc._mac_length]
    return whole[:at] + mac + whole[at + enc._mac_length :]


def _user(auth: str, priv: str) -> SnmpUser:
    user = {
        "name": "trapper",
        "auth_protocol": auth,
        "auth_key": "trapauth123",
        "priv_protocol": priv,
        "priv_key": "trappriv123",
    }
    if priv == "none":
        del user["priv_key"]
    return settings_from_dict({"snmp": {"users": [user]}}).snmp.users[0]


@pytest.mark.parametrize(
    ("auth", "priv"),
    [("SHA-256", "AES-128"), ("SHA", "AES-128"), ("SHA-512", "AES-128"), ("SHA-224", "none")],
)
def test_v3_traps_are_byte_for_byte_the_old_encoder(auth: str, priv: str) -> None:
    user = _user(auth, priv)
    engine_id = bytes.fromhex("80007ed9050102030405060708")
    now = [1000.0]
    # Two encoders in the same state: the same ids, salt and engine time per message.
    old = V3TrapEncoder(engine_id, 300, user, clock=lambda: now[0])
    new = V3TrapEncoder(engine_id, 300, user, clock=lambda: now[0])
    new._message_id, new._request_id, new._salt = old._message_id, old._request_id, old._salt
    oids = MibOids()
    varbinds = VarbindEncoder(oids)
    for index, item in enumerate(every_kind()):
        now[0] += 37.5 * index  # engine time across the INTEGER length forms
        expected = _old_v3_encode(old, notification_vars(item, oids, index))
        assert new.wrap(varbinds.encode(item, index)) == expected, item.seq


def test_v3_trap_digest_verifies_with_the_users_key() -> None:
    """The MAC pysnmp's authentication service checks (what snmptrapd checks too, in
    tests/test_snmp_traps.py)."""
    from agent.export.snmp.v3auth import Authenticator

    user = _user("SHA-256", "AES-128")
    engine_id = bytes.fromhex("80007ed9050102030405060708")
    message = V3TrapEncoder(engine_id, 1, user).wrap(VarbindEncoder(MibOids()).encode(note(1), 5))
    auth = Authenticator("SHA-256", b"trapauth123")
    # Message SEQUENCE > version, global data, security parameters OCTET STRING >
    # USM SEQUENCE > engine id, boots, time, user name, MAC.
    _, pos, _ = ber.header(message, 0)
    for _ in range(2):
        pos = ber.header(message, pos)[2]
    _, pos, _ = ber.header(message, pos)
    _, pos, _ = ber.header(message, pos)
    for _ in range(4):
        pos = ber.header(message, pos)[2]
    _, at, end = ber.header(message, pos)
    assert end - at == 24  # HMAC-192-SHA-256
    mac = message[at:end]
    assert auth.verify(engine_id, mac, message)  # the screen's check of incoming v3
    flipped = message[:-1] + bytes((message[-1] ^ 1,))
    assert not auth.verify(engine_id, mac, flipped)


# --------------------------------------------------------------------------- sending
def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _until(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def _drain(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(70_000))
        except BlockingIOError:
            return got


def test_a_full_send_buffer_is_waited_out_and_nothing_is_lost() -> None:
    """A receiver that does not read: the kernel refuses more (EAGAIN); the exporter's
    path waits until the socket is writable and sends the rest, in order."""

    async def scenario() -> None:
        # Unix datagram sockets push back when the reader's queue is full (UDP on
        # loopback never does: the kernel drops at the receiver instead).
        mine, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        peer.setblocking(False)
        sender = V2cSender("127.0.0.1:162", b"public", sock=mine)
        path = TrapPath(sender, VarbindEncoder(MibOids()))
        await path.open()
        notes = [note(seq) for seq in range(1, 2 * CHUNK + 90)]
        acked: list[int] = []
        booted = time.monotonic()
        task = asyncio.create_task(
            path.deliver(notes, lambda: int((time.monotonic() - booted) * 100), acked.append)
        )
        await _until(lambda: sender.stalls > 0)
        assert not task.done()  # waiting, not dropping
        received: list[bytes] = []
        while not task.done():
            received += _drain(peer)
            await asyncio.sleep(0.001)
        await task
        received += _drain(peer)
        path.close()
        mine.close()
        peer.close()
        assert [_decoded(m)[1][2][2] for m in received] == [str(n.seq) for n in notes]
        assert acked == [CHUNK, 2 * CHUNK, notes[-1].seq]

    _run(scenario())


class _Flaky(socket.socket):
    """A real datagram socket whose ``send`` fails as told, once per listed call."""

    failures: dict[int, int]

    def send(self, data: Any, flags: int = 0) -> int:
        self.calls = getattr(self, "calls", 0) + 1
        code = self.failures.pop(self.calls, None)
        if code is not None:
            raise OSError(code, f"injected {errno.errorcode[code]}")
        return super().send(data, flags)


def _flaky_pair(failures: dict[int, int]) -> tuple[_Flaky, socket.socket]:
    mine, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    flaky = _Flaky(mine.family, mine.type, fileno=mine.detach())
    flaky.failures = failures
    peer.setblocking(False)
    return flaky, peer


def test_enobufs_is_retried_and_counted() -> None:
    async def scenario() -> None:
        mine, peer = _flaky_pair({2: errno.ENOBUFS, 3: errno.ENOBUFS})
        sender = V2cSender("127.0.0.1:162", b"", sock=mine)
        await sender.open()
        await sender.send_all([b"a", b"b", b"c"])
        assert _drain(peer) == [b"a", b"b", b"c"]
        assert sender.nobufs == 2
        sender.close()
        mine.close()
        peer.close()

    _run(scenario())


def test_an_error_that_is_not_the_buffer_stops_the_batch_after_what_went_out() -> None:
    async def scenario() -> None:
        mine, peer = _flaky_pair({4: errno.EHOSTUNREACH})
        sender = V2cSender("127.0.0.1:162", b"public", sock=mine)
        path = TrapPath(sender, VarbindEncoder(MibOids()))
        await path.open()
        acked: list[int] = []
        with pytest.raises(SendError) as info:
            await path.deliver([note(seq) for seq in range(10, 20)], lambda: 0, acked.append)
        assert info.value.sent == 3
        assert isinstance(info.value, ExportError)  # the exporter's failure, retried
        assert acked == [12]
        assert len(_drain(peer)) == 3
        path.close()
        mine.close()
        peer.close()

    _run(scenario())


def test_a_notification_that_cannot_be_encoded_stops_the_batch_after_the_ones_before() -> None:
    async def scenario() -> None:
        mine, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        peer.setblocking(False)
        path = TrapPath(V2cSender("127.0.0.1:162", b"public", sock=mine), VarbindEncoder(MibOids()))
        await path.open()
        notes = [note(seq) for seq in range(1, 11)]
        notes[5] = note(6, severity="dreadful")
        acked: list[int] = []
        with pytest.raises(ValueError):
            await path.deliver(notes, lambda: 0, acked.append)
        assert acked == [5]
        assert len(_drain(peer)) == 5
        path.close()
        mine.close()
        peer.close()

    _run(scenario())


def test_an_icmp_refusal_does_not_cost_the_next_trap() -> None:
    """Linux reports an earlier datagram's port unreachable on the next send, and does not
    send that one: it is sent again."""

    async def scenario() -> None:
        port = free_udp_port()  # closed: nothing listens there
        sender = V2cSender(f"127.0.0.1:{port}", b"public")
        await sender.open()
        await sender.send_all([b"lost: nobody listens"])
        assert sender._sock is not None
        # Wait for the ICMP error without reading it (no await: the loop's reader does not
        # run, so the next send is the one that meets it).
        poller = select.poll()
        poller.register(sender._sock.fileno(), select.POLLERR)
        assert poller.poll(5000), "no ICMP port unreachable came back"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
            receiver.bind(("127.0.0.1", port))
            receiver.setblocking(False)
            await sender.send_all([b"one", b"two", b"three"])
            await _until(lambda: got.extend(_drain(receiver)) or len(got) == 3)
        assert got == [b"one", b"two", b"three"]
        assert sender.refused == 1
        sender.close()

    got: list[bytes] = []
    _run(scenario())


def test_a_datagram_udp_cannot_carry_is_skipped_and_counted() -> None:
    async def scenario() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
            receiver.bind(("127.0.0.1", 0))
            receiver.setblocking(False)
            sender = V2cSender(f"127.0.0.1:{receiver.getsockname()[1]}", b"public")
            await sender.open()
            await sender.send_all([b"before", b"x" * 70_000, b"after"])
            got: list[bytes] = []
            await _until(lambda: got.extend(_drain(receiver)) or len(got) == 2)
            assert got == [b"before", b"after"]
            assert sender.oversized == 1
            sender.close()

    _run(scenario())


# ---------------------------------------------------------------------------- pacing
def test_a_pace_allows_its_burst_then_its_rate() -> None:
    now = [100.0]
    pace = Pace(1000.0, 50, clock=lambda: now[0])
    assert pace.allowance() == 50
    pace.spend(50)
    assert pace.allowance() == 0
    assert pace.wait() == pytest.approx(0.001)
    now[0] += 0.010
    assert pace.allowance() == 10
    now[0] += 60
    assert pace.allowance() == 50  # never more than the burst, however long it waited
    with pytest.raises(ValueError):
        Pace(0, 50)


def test_a_paced_target_gets_everything_in_order_no_faster_than_its_rate() -> None:
    async def scenario() -> None:
        mine, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        peer.setblocking(False)
        sender = V2cSender("127.0.0.1:162", b"public", sock=mine)
        path = TrapPath(sender, VarbindEncoder(MibOids()), pace=Pace(2000.0, 50))
        await path.open()
        notes = [note(seq) for seq in range(1, 301)]
        acked: list[int] = []
        received: list[bytes] = []
        start = time.monotonic()
        task = asyncio.create_task(path.deliver(notes, lambda: 0, acked.append))
        while not task.done():
            received += _drain(peer)
            await asyncio.sleep(0.001)
        await task
        elapsed = time.monotonic() - start
        received += _drain(peer)
        path.close()
        mine.close()
        peer.close()
        assert [_decoded(m)[1][2][2] for m in received] == [str(n.seq) for n in notes]
        assert elapsed >= (300 - 50) / 2000
        assert acked[0] == 50  # the burst first, then what the rate allows
        assert acked[-1] == 300

    _run(scenario())


def test_max_rate_of_a_trap_target_paces_its_path_and_is_checked() -> None:
    from agent.config import ConfigError
    from agent.export.snmp.trap_path import trap_path

    def target(extra: dict[str, Any]) -> Any:
        snmp = {"targets": [{"address": "127.0.0.1:162", "community": "public", **extra}]}
        return settings_from_dict({"snmp": snmp}).snmp.targets[0]

    unpaced = trap_path(target({}), MibOids())
    paced = trap_path(target({"max_rate": 2000}), MibOids())
    assert unpaced._pace is None
    assert paced._pace is not None
    assert paced._pace.rate == 2000
    with pytest.raises(ConfigError, match="max_rate"):
        target({"max_rate": -1})
