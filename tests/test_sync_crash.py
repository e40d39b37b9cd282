"""SIGKILL the agent at many points of initialization and incremental syncs.

After each restart and the next sync, the hub's copy equals the element's data exactly.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AgentProcess
from tests.simulated import SimulatedElement
from tests.test_sync import add, hub_objects, sync

KILLS = 20


@pytest.mark.slow
def test_sigkill_during_syncs_loses_and_doubles_nothing(agent_factory: Any, tmp_path: Path) -> None:
    rng = random.Random(20261121)  # fixed: the same kill points every run
    element = SimulatedElement(tmp_path / "sim", objects=3000)
    try:
        element.admin("POST", "/admin/faults", {"latency_ms": 15})
        agent: AgentProcess = agent_factory({"sync": {"page_size": 200}}).start()
        add(agent, element)
        next_key = 0
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.05, 1.2))
            agent.kill()
            # The element keeps changing while the agent is down.
            for _ in range(rng.randint(1, 40)):
                next_key += 1
                element.change("tech", "create", "station", f"9{next_key:05d}", {"n": next_key})
            if kill % 3 == 0:
                element.change("tech", "update", "user", element.first_key("user"), {"kill": kill})
            agent.start()
            with agent.http() as http:
                http.post(
                    "/api/v1/elements/cm1/sync",
                    json={"kind": "init" if kill % 4 == 0 else "incremental"},
                )
        agent.kill()
        agent.start()
        job = sync(agent, "incremental")
        assert job["state"] == "done", job
        assert hub_objects(agent, "cm1") == element.objects()
        job = sync(agent, "incremental")
        assert job["counts"]["applied"] == 0, "nothing left to apply twice"
    finally:
        element.stop()
