"""snmpEngineBoots is kept in the store: it never goes backwards for an engine ID, even
with a new data directory, so receivers keep accepting the agent's v3 traps."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.export.snmp.boots import MAX_BOOTS, boots_key, next_boots
from agent.export.snmp.engine import STATE_FILE, load_engine_state
from agent.store.database import Store
from agent.store.models import META
from tests.conftest import AgentProcess
from tests.test_snmp_traps import ENGINE_ID, USER, Trapd, targets

PEN = 32473
LONGEST_ID = "80007ed905" + "ab" * 27  # 32 octets, the most RFC 3411 allows


def test_boots_count_up_per_engine_id_and_never_go_back(store: Store) -> None:
    engine = store.engine
    assert next_boots(engine, ENGINE_ID) == 1
    assert next_boots(engine, ENGINE_ID) == 2
    # The data directory may know a higher count (an older agent kept it only there).
    assert next_boots(engine, ENGINE_ID, at_least=10) == 11
    assert next_boots(engine, ENGINE_ID, at_least=3) == 12
    assert next_boots(engine, "0x" + ENGINE_ID.upper()) == 13
    assert next_boots(engine, LONGEST_ID) == 1
    assert len(boots_key(LONGEST_ID)) <= 64
    # RFC 3414: at its maximum boots stays there.
    assert next_boots(engine, LONGEST_ID, at_least=MAX_BOOTS) == MAX_BOOTS
    assert next_boots(engine, LONGEST_ID) == MAX_BOOTS


def test_a_new_data_directory_on_the_same_store_keeps_counting(
    store: Store, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert load_engine_state(first, ENGINE_ID, PEN, store.engine) == (ENGINE_ID, 1)
    assert load_engine_state(first, ENGINE_ID, PEN, store.engine) == (ENGINE_ID, 2)
    assert load_engine_state(second, ENGINE_ID, PEN, store.engine) == (ENGINE_ID, 3)
    assert json.loads((second / STATE_FILE).read_text()) == {"engine_id": ENGINE_ID, "boots": 3}
    # An existing data directory ahead of the store (kept only there before) wins.
    (first / STATE_FILE).write_text(json.dumps({"engine_id": ENGINE_ID, "boots": 40}))
    assert load_engine_state(first, ENGINE_ID, PEN, store.engine) == (ENGINE_ID, 41)
    with store.engine.connect() as conn:
        kept = conn.execute(select(META.c.value).where(META.c.key == boots_key(ENGINE_ID)))
        assert kept.scalar() == "41"


def test_a_generated_engine_id_is_kept_in_the_store(store: Store, tmp_path: Path) -> None:
    engine_id, boots = load_engine_state(tmp_path / "first", "", PEN, store.engine)
    assert engine_id.startswith("80007ed905")
    assert boots == 1
    # A reinstalled agent (no data directory) on the same store is the same engine.
    assert load_engine_state(tmp_path / "second", "", PEN, store.engine) == (engine_id, 2)


def _started(agent: AgentProcess) -> tuple[int, int]:
    """(engine boots, sequence number of this run's agent-started event)."""
    with agent.http() as http:
        status = http.get("/api/v1/status").json()
    return status["snmp"]["engine_boots"], status["last_seq"]


def _trap_arrives(trapd: Trapd, seq: int, within: float = 15) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if any(r["seq"] == seq for r in trapd.records() if r["version"] == "v3"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_a_moved_agent_is_still_accepted_by_snmptrapd(
    agent_factory: Any, trapd: Trapd, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    config = {
        "store": {"url": f"sqlite:///{shared / 'provsync.db'}", "key_file": str(shared / "key")},
        "snmp": {
            "engine_id": ENGINE_ID,
            "users": [USER],
            "targets": targets(trapd.port, ("v3", "trap")),
        },
    }
    old = agent_factory(config, root=tmp_path / "old")
    seen = 0
    for _ in range(2):  # snmptrapd learns boots 2 (from the same snmptrapd run)
        old.start()
        boots, seq = _started(old)
        assert _trap_arrives(trapd, seq), trapd.text()[-2000:]
        old.stop()
        seen = boots
    assert seen == 2
    moved = agent_factory(config, root=tmp_path / "moved").start()
    boots, seq = _started(moved)
    assert boots == seen + 1
    assert _trap_arrives(trapd, seq), (boots, trapd.text()[-2000:])
