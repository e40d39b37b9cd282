"""The alarm manager on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import PurgeOp
from agent.alarms.payloads import PayloadEncoder
from agent.errors import AlarmNotFound, InvalidRequest, UnknownAlarmType
from agent.store.database import Store
from agent.store.models import HISTORY, LOG


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def log_rows(manager: AlarmManager) -> list[dict]:  # type: ignore[type-arg]
    return [n.to_json() for n in queries.read_log(manager.engine, 0, 100_000)]


def test_raise_twice_is_one_alarm_with_count_two(manager: AlarmManager) -> None:
    async def scenario() -> None:
        first = await manager.raise_alarm("sync-failed", "cm1", text="job failed")
        second = await manager.raise_alarm("sync-failed", "cm1", text="job failed")
        assert first.alarm["id"] == second.alarm["id"]
        assert first.change == "raised"
        assert second.change == "repeated"
        assert second.seq is None

    run(scenario())
    active = queries.list_alarms(manager.engine)
    assert len(active) == 1
    assert active[0]["count"] == 2
    assert active[0]["severity"] == "major"
    assert [n["kind"] for n in log_rows(manager)] == ["alarm-raised"]


def test_qualifier_is_part_of_the_key(manager: AlarmManager) -> None:
    async def scenario() -> None:
        await manager.raise_alarm("element-unreachable", "cm1", qualifier="primary")
        await manager.raise_alarm("element-unreachable", "cm1", qualifier="secondary")
        await manager.raise_alarm("element-unreachable", "cm2", qualifier="primary")

    run(scenario())
    assert len(queries.list_alarms(manager.engine)) == 3


def test_severity_and_text_change_in_place(manager: AlarmManager) -> None:
    async def scenario() -> None:
        raised = await manager.raise_alarm("distribution-errors", "cm1", text="1 failed")
        changed = await manager.raise_alarm(
            "distribution-errors", "cm1", severity="major", text="12 failed"
        )
        assert changed.change == "severity+text"
        assert changed.alarm["raise_seq"] == raised.seq
        assert changed.seq == raised.seq + 1

    run(scenario())
    (alarm,) = queries.list_alarms(manager.engine)
    assert alarm["severity"] == "major"
    assert alarm["text"] == "12 failed"
    kinds = [(n["kind"], n["severity"]) for n in log_rows(manager)]
    assert kinds == [("alarm-raised", "minor"), ("alarm-changed", "major")]


def test_clear_by_key_and_by_id(manager: AlarmManager) -> None:
    async def scenario() -> None:
        a = await manager.raise_alarm("sync-failed", "cm1")
        b = await manager.raise_alarm("sync-failed", "cm2")
        cleared = await manager.clear(type_id="sync-failed", resource="cm1", note="fixed", by="ops")
        assert cleared.alarm["cleared"] is True
        by_id = await manager.clear(b.alarm["id"])
        assert by_id.change == "cleared"
        again = await manager.clear(b.alarm["id"])
        assert again.change == "already-cleared"
        assert again.seq is None
        with pytest.raises(AlarmNotFound, match="no active sync-failed alarm"):
            await manager.clear(type_id="sync-failed", resource="cm1")
        with pytest.raises(AlarmNotFound, match="no alarm with id 999"):
            await manager.clear(999)
        # The cleared key raises a new alarm with a new id.
        fresh = await manager.raise_alarm("sync-failed", "cm1")
        assert fresh.alarm["id"] > max(a.alarm["id"], b.alarm["id"])

    run(scenario())
    notes = log_rows(manager)
    clear = next(n for n in notes if n["kind"] == "alarm-cleared")
    assert clear["severity"] == "cleared"
    assert clear["raise_seq"] == notes[0]["seq"]
    assert clear["note"] == "fixed"
    assert len(queries.list_alarms(manager.engine, state="all")) == 3
    assert len(queries.list_alarms(manager.engine, state="cleared")) == 2


def test_acknowledge_and_history(manager: AlarmManager) -> None:
    async def scenario() -> int:
        raised = await manager.raise_alarm("auth-failed-missing", "cm1")
        alarm_id: int = raised.alarm["id"]
        ack = await manager.acknowledge(alarm_id, by="alice", note="on it")
        assert ack.alarm["operator_state"] == "acknowledged"
        same = await manager.acknowledge(alarm_id, by="alice")
        assert same.seq is None
        unack = await manager.acknowledge(alarm_id, acknowledge=False, by="bob")
        assert unack.alarm["operator_state"] == "none"
        await manager.clear(alarm_id, by="bob", note="creds set")
        with pytest.raises(AlarmNotFound):
            await manager.acknowledge(12345, by="x")
        return alarm_id

    alarm_id = run(scenario())
    shown = queries.get_alarm(manager.engine, alarm_id)
    assert shown is not None
    assert [h["change"] for h in shown["history"]] == [
        "raised",
        "acknowledged",
        "unacknowledged",
        "cleared",
    ]
    assert shown["history"][1]["by"] == "alice"
    assert shown["history"][1]["note"] == "on it"
    assert shown["history"][3]["severity"] == "cleared"


def test_refusals(manager: AlarmManager) -> None:
    async def scenario() -> None:
        with pytest.raises(UnknownAlarmType):
            await manager.raise_alarm("no-such-type", "x")
        with pytest.raises(InvalidRequest, match="event type"):
            await manager.raise_alarm("test", "x")
        with pytest.raises(InvalidRequest, match="alarm type"):
            await manager.emit_event("sync-failed", "x")
        with pytest.raises(InvalidRequest, match="cleared"):
            await manager.raise_alarm("sync-failed", "x", severity="cleared")
        with pytest.raises(ValueError, match="loud"):
            await manager.raise_alarm("sync-failed", "x", severity="loud")
        with pytest.raises(InvalidRequest, match="resource"):
            await manager.raise_alarm("sync-failed", "  ")
        with pytest.raises(InvalidRequest, match="control"):
            await manager.raise_alarm("sync-failed", "a\nb")

    run(scenario())
    assert log_rows(manager) == []


def test_events_are_logged_and_listed(manager: AlarmManager) -> None:
    async def scenario() -> None:
        await manager.emit_event("test", "agent", text="hello", details={"by": "me"})
        await manager.emit_event("force-init-sync", "cm1", severity="warning")

    run(scenario())
    events = queries.list_events(manager.engine)
    assert [(e["type"], e["severity"]) for e in events] == [
        ("test", "indeterminate"),
        ("force-init-sync", "warning"),
    ]
    assert events[0]["details"] == {"by": "me"}
    assert queries.list_events(manager.engine, type_id="test")[0]["text"] == "hello"
    first = queries.list_events(manager.engine)[0]["seq"]
    paged = queries.list_events(manager.engine, after_seq=first, limit=1)
    assert [e["type"] for e in paged] == ["force-init-sync"], "after_seq pages forward"
    assert log_rows(manager)[0]["kind"] == "event"


def test_concurrent_changes_get_gap_free_sequence(manager: AlarmManager) -> None:
    count = 1000

    async def scenario() -> None:
        await asyncio.gather(
            *(manager.raise_alarm("sync-failed", f"cm{i}") for i in range(count)),
            *(manager.emit_event("heartbeat", "agent") for _ in range(100)),
        )
        await asyncio.gather(
            *(manager.clear(type_id="sync-failed", resource=f"cm{i}") for i in range(count))
        )

    run(scenario())
    seqs = [n["seq"] for n in log_rows(manager)]
    assert seqs == list(range(1, 2 * count + 100 + 1))
    assert manager.last_seq == seqs[-1]
    assert queries.alarm_counts(manager.engine)["total"] == 0


def test_ids_and_sequence_survive_restart_and_purge(store: Store) -> None:
    clock_now = [datetime.now(UTC)]
    first = AlarmManager(store.engine, Catalog(), clock=lambda: clock_now[0])
    first.start()

    async def fill(manager: AlarmManager) -> int:
        raised = await manager.raise_alarm("sync-failed", "cm1")
        await manager.clear(raised.alarm["id"])
        return int(raised.alarm["id"])

    old_id = run(fill(first))
    first.stop()
    # Much later: retention removes the cleared alarm and the whole log.
    clock_now[0] += timedelta(days=60)
    second = AlarmManager(store.engine, Catalog(), clock=lambda: clock_now[0])
    second.start()
    counts = run(second.purge(PurgeOp(30, 30, 1000, 30)))
    assert counts["alarms"] == 1
    assert counts["notifications"] == 2
    second.stop()
    third = AlarmManager(store.engine, Catalog(), clock=lambda: clock_now[0])
    third.start()
    new = run(third.raise_alarm("sync-failed", "cm1"))
    third.stop()
    assert new.alarm["id"] > old_id, "alarm ids are never reused"
    assert new.seq == 3, "sequence numbers continue after a purge"
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(HISTORY)).scalar() == 1


def test_log_is_bounded_by_count(manager: AlarmManager) -> None:
    async def scenario() -> dict[str, int]:
        for i in range(150):
            await manager.emit_event("heartbeat", f"r{i}")
        return await manager.purge(PurgeOp(30, 30, 100, 30))

    counts = run(scenario())
    assert counts["notifications"] == 50
    with manager.engine.connect() as conn:
        assert conn.execute(select(func.min(LOG.c.seq))).scalar() == 51


def test_payload_carries_what_exporters_need(manager: AlarmManager) -> None:
    run(manager.raise_alarm("element-unreachable", "cm9", text="no route"))
    with manager.engine.connect() as conn:
        payload = json.loads(conn.execute(select(LOG.c.payload)).scalar_one())
    assert payload["type_name"] == "Element Unreachable"
    assert payload["event_type"] == "communicationsAlarm"
    assert payload["probable_cause"] == "communicationsSubsystemFailure"
    assert payload["resolution"] == "provsync elements show cm9 | GET /api/v1/elements/cm9"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_payload_json_is_what_json_dumps_gives(manager: AlarmManager) -> None:
    """The payload's JSON is built from a per-type head: the same text as json.dumps."""
    payloads = PayloadEncoder(manager.catalog)
    for resource in ("cm1", 'quote " and \\ back', "é€ unicode", "\u2028"):
        for count, state in ((1, "none"), (12345678901, "acknowledged")):
            row = {
                "type_id": "element-unreachable",
                "count": count,
                "operator_state": state,
                "resolution": f"show {resource}",
            }
            encoded, parsed = payloads.encode(row)
            assert encoded == json.dumps(parsed, separators=(",", ":"))
            assert json.loads(encoded) == parsed
    odd = {"type_id": "sync-failed", "count": 2, "operator_state": "none", "resolution": None}
    encoded, parsed = payloads.encode(odd)
    assert encoded == json.dumps(parsed, separators=(",", ":"))
    acked = {**odd, "operator_state": "acknowledged", "ack_by": "noc-anna"}
    encoded, parsed = payloads.encode(acked)
    assert json.loads(encoded)["ack_by"] == "noc-anna"
    assert "ack_by" not in payloads.encode({**acked, "operator_state": "none"})[1]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_change_after_an_ack_still_says_who_acknowledged(manager: AlarmManager) -> None:
    """An acknowledged alarm's later notifications carry ack_by (SNMP provsyncNotifyAckBy)."""

    async def go() -> list[dict[str, object]]:
        alarm = await manager.raise_alarm("sync-failed", "cm7", severity="minor", text="a")
        await manager.acknowledge(alarm.alarm["id"], by="noc-anna")
        await manager.raise_alarm("sync-failed", "cm7", severity="major", text="b")
        with manager.engine.connect() as conn:
            rows = conn.execute(select(LOG.c.payload).order_by(LOG.c.seq)).scalars().all()
        return [json.loads(r) for r in rows]

    payloads = run(go())
    assert payloads[-1]["operator_state"] == "acknowledged"
    assert payloads[-1]["ack_by"] == "noc-anna"
    assert "ack_by" not in payloads[0]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_control_characters_are_refused_and_nothing_else(manager: AlarmManager) -> None:
    for code in range(32):
        with pytest.raises(InvalidRequest, match="control"):
            manager.make_raise("sync-failed", f"a{chr(code)}b")
        with pytest.raises(InvalidRequest, match="control"):
            manager.make_raise("sync-failed", "a", qualifier=f"q{chr(code)}q")
    for fine in ("a b", "a\x7fb", "é€ 漢字", "x" * 255):
        assert manager.make_raise("sync-failed", fine, qualifier=fine).resource == fine
