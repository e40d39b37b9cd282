"""HTTP client for the control API, used by the CLI."""

from __future__ import annotations

from typing import Any

import httpx

from agent.config import Settings, parse_address, read_token_file
from agent.errors import AgentUnavailable, ApiError


def api_url_for(settings: Settings) -> str:
    host, port = parse_address(settings.api.listen)
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard bind to a reachable address
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def token_for(settings: Settings) -> str | None:
    return settings.api.token or read_token_file(settings.token_file)


class Client:
    def __init__(self, base_url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, f"/api/v1{path}", json=json, params=clean)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise AgentUnavailable(
                f"the provsync agent is not running at {self.base_url} ({reason})"
            ) from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.text
            except ValueError:
                message = response.text or response.reason_phrase
            raise ApiError(response.status_code, f"{message} (HTTP {response.status_code})")
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)
