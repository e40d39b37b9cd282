"""The leader's watch over the other members (agent.cluster.watch), in process on the
local PostgreSQL, with the member rows written as the heartbeats write them and a sink
that records what the watch raised and cleared."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.alarms.records import AlarmChange
from agent.cluster.watch import MEMBER_LOST, MemberWatch
from agent.store.database import Store
from agent.store.members import Member, read_view, write_member

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class RecordingSink:
    """The alarm sink's face the watch uses: active keys, raise, clear."""

    def __init__(self) -> None:
        self.active: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    def active_keys(self, type_id: str) -> list[tuple[str, str, str]]:
        assert type_id == MEMBER_LOST
        return [(type_id, resource, "") for resource in self.active]

    async def raise_alarm(self, type_id: str, resource: str, **kw: Any) -> AlarmChange:
        self.active[resource] = kw["text"]
        self.calls.append(("raise", resource))
        return None  # type: ignore[return-value]  # the watch does not read it

    async def clear(self, alarm_id: int | None = None, **kw: Any) -> AlarmChange:
        del self.active[kw["resource"]]
        self.calls.append(("clear", kw["resource"]))
        return None  # type: ignore[return-value]


def beat(store: Store, node: str, role: str, at: datetime) -> None:
    write_member(store.engine, Member(node, role, f"http://{node}:8163", 100, T0, at))


@pytest.mark.postgres
def test_a_silent_member_is_alarmed_cleared_when_it_beats_and_forgotten_later(
    pg_url: str,
) -> None:
    store = Store(pg_url)
    store.open()
    try:
        sink = RecordingSink()
        watch = MemberWatch(store.engine, sink, "node-a", timeout=10, forget_after=3600)

        def check(at: datetime) -> None:
            asyncio.run(watch.check(now=at))

        beat(store, "node-a", "leader", T0)
        beat(store, "node-b", "standby", T0)
        beat(store, "node-c", "standby", T0)
        check(T0 + timedelta(seconds=5))
        assert sink.calls == []
        # B went silent: alarmed once, not again at the next checks.
        beat(store, "node-c", "standby", T0 + timedelta(seconds=12))
        check(T0 + timedelta(seconds=12))
        check(T0 + timedelta(seconds=13))
        assert sink.calls == [("raise", "node-b")]
        assert "node-b sent no heartbeat for 12 s" in sink.active["node-b"]
        # The leader never alarms itself.
        assert "node-a" not in sink.active
        # B beats again: cleared.
        beat(store, "node-b", "standby", T0 + timedelta(seconds=20))
        check(T0 + timedelta(seconds=21))
        assert sink.calls[-1] == ("clear", "node-b")
        # C stops in order: no alarm, however long ago.
        beat(store, "node-c", "stopped", T0 + timedelta(seconds=22))
        check(T0 + timedelta(seconds=600))
        assert "node-c" not in sink.active
        assert ("raise", "node-c") not in sink.calls
        # B gone again, then for longer than forget_after: its row goes, its alarm too.
        check(T0 + timedelta(seconds=60))
        assert "node-b" in sink.active
        check(T0 + timedelta(seconds=3700))
        assert sink.active == {}
        nodes = {m.node for m in read_view(store.engine).members}
        assert nodes == {"node-a"}, "B (gone) and C (stopped) forgotten"
    finally:
        store.close()


@pytest.mark.postgres
def test_a_new_leader_clears_its_own_alarm_and_keeps_the_others(pg_url: str) -> None:
    store = Store(pg_url)
    store.open()
    try:
        sink = RecordingSink()
        # Raised by the previous leader (A) while B was cut off; B leads now, A is gone.
        sink.active = {"node-b": "lost", "node-a": "lost"}
        beat(store, "node-a", "leader", T0)
        beat(store, "node-b", "leader", T0 + timedelta(seconds=30))
        watch = MemberWatch(store.engine, sink, "node-b", timeout=10, forget_after=3600)
        asyncio.run(watch.check(now=T0 + timedelta(seconds=31)))
        assert sink.calls == [("clear", "node-b")]
        assert set(sink.active) == {"node-a"}
    finally:
        store.close()
