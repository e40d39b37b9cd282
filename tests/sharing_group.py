"""A hub (`provsync run`) and simulated elements that call it, as real processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import TOKEN, AgentProcess
from tests.simulated import SimulatedElement

SHARED = ("user", "station", "directory-number", "group", "mailbox")
FAST = {"sharing": {"retry_initial": "100ms", "retry_max": "500ms"}}


class SharingGroup:
    def __init__(self, agent: AgentProcess, root: Path) -> None:
        self.agent = agent
        self.root = root
        self.elements: dict[str, SimulatedElement] = {}

    def add(
        self,
        name: str,
        version: str = "10.2.1",
        objects: int = 40,
        seed_type: str = "",
        element_type: str = "call-server",
        **extra: Any,
    ) -> SimulatedElement:
        element = SimulatedElement(
            self.root / name,
            objects=objects,
            version=version,
            hub=self.agent.url,
            hub_token=TOKEN,
            element_id=name,
            element_type=element_type,
        )
        self.elements[name] = element
        body = {
            "name": name,
            "url": element.url,
            "username": "admin",
            "password": "s3cret-pass",
            "type": element_type,
            **extra,
        }
        with self.agent.http() as http:
            response = http.post("/api/v1/elements", json=body)
            assert response.status_code == 200, response.text
            job = response.json()["job"]
        self.agent.wait_job(job, within=30)
        return element

    def stop(self) -> None:
        for element in self.elements.values():
            element.stop()

    # ---------------------------------------------------------------- the hub's view
    def get(self, path: str, **params: Any) -> Any:
        with self.agent.http() as http:
            response = http.get(f"/api/v1{path}", params=params)
            assert response.status_code == 200, response.text
            return response.json()

    def alarms(self, type_id: str, resource: str | None = None) -> list[dict[str, Any]]:
        params = {"type": type_id, **({"resource": resource} if resource else {})}
        found: list[dict[str, Any]] = self.get("/alarms", **params)
        return found

    def cleared(self, type_id: str, resource: str | None = None) -> list[dict[str, Any]]:
        params = {
            "type": type_id,
            "state": "cleared",
            **({"resource": resource} if resource else {}),
        }
        found: list[dict[str, Any]] = self.get("/alarms", **params)
        return found

    def events(self, type_id: str, resource: str | None = None) -> list[dict[str, Any]]:
        params = {"type": type_id, **({"resource": resource} if resource else {})}
        found: list[dict[str, Any]] = self.get("/events", **params)
        return found

    def status(self) -> dict[str, Any]:
        found: dict[str, Any] = self.get("/sharing")
        return found

    def hub_data(self) -> dict[tuple[str, str], Any]:
        data: dict[tuple[str, str], Any] = {}
        for cls in SHARED:
            data.update(
                {(cls, o["key"]): o["data"] for o in self.get(f"/objects/{cls}", limit=100_000)}
            )
        return data

    def settled(self) -> bool:
        """Nothing waits for distribution (and nothing failed)."""
        return all(e["pending"] == 0 and e["errors"] == 0 for e in self.status()["elements"])

    # ---------------------------------------------------------------- element-side actions
    def start_sharing(self, name: str) -> Any:
        return self.elements[name].call("POST", "/admin/sharing/start")

    def sync(self, name: str) -> dict[str, Any]:
        """The element's Sync to the hub, waited for."""
        response = self.elements[name].call("POST", "/admin/sharing/sync")
        assert response.status_code == 202, response.text
        return self.agent.wait_job(response.json()["job"], within=30)

    def local_change(
        self, name: str, op: str, cls: str, key: str, data: Any, share: bool | None = None
    ) -> dict[str, Any]:
        body = {"op": op, "class": cls, "key": key, "data": data, "user": "admin"}
        if share is not None:
            body["share"] = share
        response = self.elements[name].call("POST", "/admin/changes", body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer
