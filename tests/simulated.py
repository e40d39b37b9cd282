"""`provsync simulate` as a real process, with its admin routes at hand."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from agent.connectors.http import HttpConnector
from agent.http_tls import client_context
from agent.store.elements import Credentials
from tests.conftest import free_port
from tests.forked import Forked
from tests.waiting import healthy


class SimulatedElement:
    def __init__(
        self,
        root: Path,
        objects: int = 300,
        version: str = "10.2.1",
        *,
        hub: str = "",
        hub_token: str = "",
        element_id: str | None = None,
        element_type: str = "call-server",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        password_file = root / "password"
        password_file.write_text("s3cret-pass\n")
        self.credentials = Credentials("admin", "s3cret-pass")
        self.proc = Forked(
            [
                "simulate",
                "--port",
                str(self.port),
                "--objects",
                str(objects),
                "--seed",
                "7",
                "--username",
                "admin",
                "--password-file",
                str(password_file),
                "--software-version",
                version,
                "--type",
                element_type,
                *(["--element-id", element_id] if element_id else []),
                *(
                    ["--hub", hub, "--hub-token-file", str(self._token_file(root, hub_token))]
                    if hub
                    else []
                ),
            ],
            env=dict(os.environ),
            cwd=root,
            stdout=Path(os.devnull),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if healthy(self.url):
                return
            time.sleep(0.05)
        raise AssertionError("simulator did not start")

    @staticmethod
    def _token_file(root: Path, token: str) -> Path:
        path = root / "hub.token"
        path.write_text(token + "\n")
        return path

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """An admin call whose status the caller checks (hub answers pass through)."""
        auth = (self.credentials.username, self.credentials.password)
        return httpx.request(
            method, f"{self.url}{path}", json=body, auth=auth, timeout=60, verify=client_context()
        )

    def shared(self, classes: tuple[str, ...]) -> dict[tuple[str, str], Any]:
        return {k: v for k, v in self.objects().items() if k[0] in classes}

    def connect(self, credentials: Credentials | None) -> HttpConnector:
        return HttpConnector(self.url, credentials, retries=1, backoff=0.05)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        auth = (self.credentials.username, self.credentials.password)
        response = httpx.request(
            method, f"{self.url}{path}", json=body, auth=auth, verify=client_context()
        )
        response.raise_for_status()
        return response.json()

    def change(self, user: str, op: str, cls: str, key: str, data: Any) -> None:
        self.admin(
            "POST",
            "/admin/changes",
            {"user": user, "op": op, "class": cls, "key": key, "data": data},
        )

    def new_epoch(self) -> None:
        self.admin("POST", "/admin/epoch")

    def reject(self, cls: str, prefix: str, reason: str) -> None:
        self.admin("POST", "/admin/reject", {"class": cls, "key_prefix": prefix, "reason": reason})

    def objects(self) -> dict[tuple[str, str], Any]:
        """Everything the element holds, as the hub should copy it."""
        found: dict[tuple[str, str], Any] = {}
        for cls in self.admin("GET", "/api/v1/info")["classes"]:
            after = None
            while True:
                query = f"/api/v1/objects/{cls}?limit=5000" + (f"&after={after}" if after else "")
                page = self.admin("GET", query)
                found.update({(cls, o["key"]): o["data"] for o in page["objects"]})
                after = page["next"]
                if after is None:
                    break
        return found

    def first_key(self, cls: str) -> str:
        key: str = self.admin("GET", f"/api/v1/objects/{cls}?limit=1")["objects"][0]["key"]
        return key

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
