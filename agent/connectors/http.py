"""The built-in ``http`` connector: Element API v1 (docs/element-api.md) with httpx.

Transport errors (no connection, timeouts) are retried with exponential backoff; an
answer, even a 5xx, is not retried: it becomes the contract's error at once. Each attempt
is bounded as a whole by ``timeout`` (httpx bounds each phase, connect, every read, on its
own: an element trickling its answer would otherwise hold a sync for ever).

A success answer that is not what Element API v1 promises (not a JSON object, a field
missing or of the wrong type) is :class:`~agent.errors.MalformedAnswer`, a ConnectorError:
the engine sees only the contract's errors, never the KeyError or ValueError of reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from agent.connectors.base import (
    ChangePage,
    ChangeRecord,
    Connector,
    Credentials,
    ElementInfo,
    ObjectPage,
    ObjectRecord,
)
from agent.errors import (
    AuthError,
    AuthIncorrect,
    AuthMissing,
    ConnectorError,
    CursorGone,
    ElementUnreachable,
    MalformedAnswer,
    UpdateRejected,
)
from agent.http_tls import client_context

_NOT_JSON: Any = object()
"""The body of an answer that is not JSON (an error answer's text is then its message)."""


def _data_or_none(data: Any) -> dict[str, Any] | None:
    """A change's data: an object, or null for a delete (TypeError for anything else)."""
    if data is None or type(data) is dict:
        return data
    raise TypeError(f"a change's data is {type(data).__name__}, not an object or null")


def _flag(value: Any) -> bool:
    """A JSON boolean (TypeError for anything else: "false" must not read as true)."""
    if type(value) is bool:
        return value
    raise TypeError(f"a flag is {type(value).__name__}, not true or false")


class HttpConnector(Connector):
    def __init__(
        self,
        address: str,
        credentials: Credentials | None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(address, credentials)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        auth = (credentials.username, credentials.password) if credentials else None
        self._client = httpx.AsyncClient(
            base_url=address.rstrip("/") + "/api/v1",
            auth=auth,
            timeout=timeout,
            transport=transport,
            verify=client_context(),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded body of a success answer; the contract's error for anything else."""
        delay = self.backoff
        last: str = ""
        for attempt in range(self.retries + 1):
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = str(exc) or type(exc).__name__
            except TimeoutError:
                last = f"no complete answer within {self.timeout:g} s"
            else:
                return self._answer(response)
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay *= 2
        raise ElementUnreachable(f"element at {self.address} did not answer: {last}")

    def _answer(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = _NOT_JSON
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 401:
            if error == "credentials-required":
                raise AuthMissing(f"element at {self.address} needs a username and password")
            raise AuthIncorrect(f"element at {self.address} refused the username or password")
        if response.status_code == 410:
            raise CursorGone(f"element at {self.address}: {error or 'gone'}")
        if response.status_code == 409 and isinstance(body, dict) and "reason" in body:
            raise UpdateRejected(str(body["reason"]))
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            refused = ConnectorError(
                f"element at {self.address} answered {response.status_code}: "
                f"{message or error or response.text[:200]}"
            )
            refused.status = response.status_code
            raise refused
        return body

    @contextlib.contextmanager
    def _reading(self, request: str, body: Any) -> Iterator[dict[str, Any]]:
        """``body`` as a JSON object; what goes wrong reading it is MalformedAnswer.

        Reading an answer field by field raises KeyError, TypeError, ValueError or
        AttributeError when the element sends something else; those belong to no contract.
        """
        where = f"element at {self.address} answered {request} with"
        if body is _NOT_JSON:
            raise MalformedAnswer(f"{where} a body that is not JSON")
        if not isinstance(body, dict):
            raise MalformedAnswer(f"{where} JSON that is not an object")
        try:
            yield body
        except KeyError as exc:
            raise MalformedAnswer(f"{where} no field {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise MalformedAnswer(f"{where} a malformed answer: {exc}") from None

    async def info(self) -> ElementInfo:
        answer = await self._request("GET", "/info")
        with self._reading("GET /info", answer) as body:
            return ElementInfo(
                element_id=str(body["element_id"]),
                type=str(body["type"]),
                software_version=str(body["software_version"]),
                epoch=str(body["epoch"]),
                classes=tuple(body.get("classes", ())),
                last_seq=int(body.get("last_seq", 0)),
                counts={str(k): int(v) for k, v in (body.get("counts") or {}).items()},
                notify_sync=_flag(body.get("notify_sync", False)),
            )

    async def objects(
        self,
        cls: str,
        *,
        after: str | None = None,
        snapshot: str | None = None,
        limit: int = 1000,
    ) -> ObjectPage:
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        if snapshot is not None:
            params["snapshot"] = snapshot
        answer = await self._request("GET", f"/objects/{cls}", params=params)
        with self._reading(f"GET /objects/{cls}", answer) as body:
            return ObjectPage(
                snapshot=str(body["snapshot"]),
                # A decoded object is a dict already: copying it (100,000 of them in an
                # initialization) bought nothing.
                objects=tuple(
                    ObjectRecord(str(o["key"]), d if type(d := o["data"]) is dict else dict(d))
                    for o in body["objects"]
                ),
                next=body.get("next"),
            )

    async def changes(self, after: int, *, epoch: str | None, limit: int = 1000) -> ChangePage:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if epoch is not None:
            params["epoch"] = epoch
        answer = await self._request("GET", "/changes", params=params)
        with self._reading("GET /changes", answer) as body:
            return ChangePage(
                epoch=str(body["epoch"]),
                changes=tuple(
                    ChangeRecord(
                        seq=int(c["seq"]),
                        time=datetime.fromisoformat(str(c["time"]).replace("Z", "+00:00")),
                        user=str(c["user"]),
                        op=str(c["op"]),
                        cls=str(c["class"]),
                        key=str(c["key"]),
                        data=_data_or_none(c.get("data")),
                        notify_sync=_flag(c.get("notify_sync", False)),
                    )
                    for c in body["changes"]
                ),
                last_seq=int(body["last_seq"]),
            )

    async def apply(
        self, cls: str, key: str, op: str, data: dict[str, Any] | None, *, user: str
    ) -> int:
        try:
            body = await self._request(
                "POST",
                "/updates",
                json={"class": cls, "key": key, "op": op, "data": data, "user": user},
            )
        except (AuthError, CursorGone, UpdateRejected):
            raise
        except ConnectorError as exc:
            # A 4xx other than authentication (unknown class, invalid data) refuses this one
            # update; retrying it would never help. 5xx and no answer are retried.
            if 400 <= exc.status < 500:
                raise UpdateRejected(str(exc)) from None
            raise
        with self._reading("POST /updates", body) as answer:
            return int(answer["seq"])

    async def register_device_data(self) -> None:
        await self._request("POST", "/device-data", json={"enabled": True})

    async def activate(self, elements: list[dict[str, Any]]) -> None:
        await self._request("POST", "/activation", json={"elements": elements})
