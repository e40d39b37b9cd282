"""The hot write routes, served without FastAPI's per-request stack.

FastAPI's stack (its middlewares, the router, dependency solving, the response model)
costs about as much CPU per request as the rest of a raise does, in the one process the
agent's writer, exporters and SNMP view share. ``FastRoutes`` sits between the
RequestGuard (token and declared length, checked first as before) and the FastAPI app,
and answers these itself:

    POST /api/v1/alarms                          raise
    POST /api/v1/alarms/clear                    clear by key
    POST /api/v1/alarms/{alarm_id}/clear|ack|unack
    POST /api/v1/alarms/batch

Everything else goes to FastAPI unchanged, whose declarations of these routes stay the
OpenAPI document. The answers cannot drift from FastAPI's because everything that decides
them is FastAPI's or the app's own: the routes' body and path fields (FastAPI's
``ModelField`` objects, so the same pydantic validation and error locations), the
routes' token check (``agent.api.guard.route_authorized``), the same functions behind
the routes (``agent.api.alarm_routes.do_raise`` ...), and the app's exception handlers
for every refusal. What this module does itself is FastAPI's order of steps: read the
body (counting it against ``max_body``: 413), parse it as JSON when the content type says
so (422 for bad JSON), check the token, validate the path then the body (422), call the
route's function and encode its answer as FastAPI does (pydantic's JSON encoder).
``tests/test_api_fast_routes.py`` sends the same requests to this and to the plain
FastAPI app and compares the answers byte for byte.
"""

from __future__ import annotations

import copy
import email.message
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi._compat import ModelField
from fastapi.datastructures import DefaultPlaceholder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from agent.api.alarm_routes import (
    do_ack,
    do_batch,
    do_clear_by_id,
    do_clear_by_key,
    do_raise,
    do_unack,
)
from agent.api.app import create_app, token_policy
from agent.api.guard import App, Receive, RequestGuard, Scope, Send, refusal, route_authorized
from agent.api.services import Services, authorize

Run = Callable[[Services, int | None, Any], Awaitable[dict[str, Any]]]
"""A route's function: services, the path's alarm id (None when it has none), the body."""

_UNDEFINED = object()
"""No body at all (FastAPI's ``Undefined``): a required body is missing, an optional one
takes its default."""

_JSON_HEADERS = [(b"content-type", b"application/json")]


def _plain(call: Callable[[Services, Any], Awaitable[dict[str, Any]]]) -> Run:
    async def run(services: Services, alarm_id: int | None, body: Any) -> dict[str, Any]:
        return await call(services, body)

    return run


def _by_id(call: Callable[[Services, int, Any], Awaitable[dict[str, Any]]]) -> Run:
    async def run(services: Services, alarm_id: int | None, body: Any) -> dict[str, Any]:
        assert alarm_id is not None, "validated from the path"
        return await call(services, alarm_id, body)

    return run


# (path as FastAPI declares it, the function its route calls)
_EXACT: tuple[tuple[str, Run], ...] = (
    ("/api/v1/alarms", _plain(do_raise)),
    ("/api/v1/alarms/clear", _plain(do_clear_by_key)),
    ("/api/v1/alarms/batch", _plain(do_batch)),
)
_BY_ID: tuple[tuple[str, Run], ...] = (
    ("clear", _by_id(do_clear_by_id)),
    ("ack", _by_id(do_ack)),
    ("unack", _by_id(do_unack)),
)
# Starlette's own pattern for "/api/v1/alarms/{alarm_id}/<action>" ('^...$', [^/]+),
# so whatever this takes, FastAPI's router takes to the same route.
_ID_PATH = re.compile(r"^/api/v1/alarms/([^/]+)/(clear|ack|unack)$")


@dataclass(frozen=True, slots=True)
class _Route:
    body: ModelField
    path: ModelField | None
    run: Run
    quick: TypeAdapter[Any]
    """The body's type, validated straight from the JSON bytes (pydantic's parser): what
    it accepts, FastAPI's json.loads + validation accepts alike; anything it refuses goes
    FastAPI's way, for FastAPI's answer."""


def _api_route(router: APIRouter, path: str) -> APIRoute:
    """The POST route for ``path``, checked to take nothing this module ignores."""
    found = [
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == path and "POST" in (r.methods or ())
    ]
    assert len(found) == 1, f"one POST route for {path}, found {len(found)}"
    route = found[0]
    dependant = route.dependant
    # A parameter added to the route (query, header, ...) must be added here too.
    assert not dependant.query_params, path
    assert not dependant.header_params, path
    assert not dependant.cookie_params, path
    assert route.body_field is not None, path
    assert any(d.call is authorize for d in dependant.dependencies), path
    assert route.status_code is None, path
    assert isinstance(route.response_class, DefaultPlaceholder), path  # JSON, as here
    return route


def _quick(field: ModelField) -> TypeAdapter[Any]:
    annotation = field.field_info.annotation
    assert annotation is not None, field.name
    return TypeAdapter(annotation)


def _routes(app: FastAPI) -> tuple[dict[str, _Route], dict[str, _Route]]:
    router = app.state.alarm_router  # the APIRouter create_app included, as declared
    assert isinstance(router, APIRouter)
    exact: dict[str, _Route] = {}
    for path, run in _EXACT:
        route = _api_route(router, path)
        assert route.body_field is not None
        assert not route.dependant.path_params, path
        exact[path] = _Route(route.body_field, None, run, _quick(route.body_field))
    by_id: dict[str, _Route] = {}
    for action, run in _BY_ID:
        route = _api_route(router, "/api/v1/alarms/{alarm_id}/" + action)
        assert route.body_field is not None
        (param,) = route.dependant.path_params
        assert param.alias == "alarm_id"
        by_id[action] = _Route(route.body_field, param, run, _quick(route.body_field))
    return exact, by_id


def _is_json(content_type: str) -> bool:
    """FastAPI's test of a body's content type (application/json or application/*+json)."""
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class FastRoutes:
    """The hot write routes, answered here; every other request goes to ``app``.

    Args:
        app: the FastAPI application (built without the guard: it is in front of this).
        services: what the routes use (the same object as ``app.state.services``).
    """

    def __init__(self, app: FastAPI, services: Services) -> None:
        self.app = app
        self.services = services
        self.max_body = services.max_body
        self._exact, self._by_id = _routes(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            route = self._exact.get(path)
            if route is not None:
                await self._serve(route, None, scope, receive, send)
                return
            matched = _ID_PATH.match(path)
            if matched is not None:
                await self._serve(self._by_id[matched[2]], matched[1], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, route: _Route, alarm_id: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            answer = await self._answer(route, alarm_id, scope, receive)
        except Exception as exc:  # answered as the app answers it
            await self._refuse(exc, scope, receive, send)
            return
        payload = to_json(answer)
        headers = [(b"content-length", str(len(payload)).encode()), *_JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _answer(
        self, route: _Route, alarm_id: str | None, scope: Scope, receive: Receive
    ) -> dict[str, Any]:
        """FastAPI's steps for one request, in its order; raises what it would raise."""
        content_type: str | None = None
        authorization: str | None = None
        for key, raw in scope["headers"]:  # the first of each, as Starlette's Headers
            if key == b"content-type" and content_type is None:
                content_type = raw.decode("latin-1")
            elif key == b"authorization" and authorization is None:
                authorization = raw.decode("latin-1")
        body = await self._read(receive)
        value: Any = _UNDEFINED
        parsed: Any = _UNDEFINED
        if body:
            value = body  # no JSON content type: the bytes, which validation refuses
            if content_type and _is_json(content_type):
                try:
                    parsed = route.quick.validate_json(body)
                except ValidationError:
                    value = self._parse(body)  # FastAPI's way, for its refusal
                else:
                    value = None  # (only read when there are errors: none in the body)
        if not route_authorized(authorization, self.services.token):
            raise refusal()
        errors: list[Any] = []
        number: int | None = None
        if route.path is not None:
            number, problems = route.path.validate(alarm_id, {}, loc=("path", route.path.alias))
            errors.extend(problems)
        if parsed is not _UNDEFINED:
            pass  # valid already
        elif value is _UNDEFINED:
            parsed = None
            if route.body.field_info.is_required():
                errors.append(
                    {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
                )
            else:
                parsed = copy.deepcopy(route.body.default)
        else:
            parsed, problems = route.body.validate(value, {}, loc=("body",))
            errors.extend(problems)
        if errors:
            raise RequestValidationError(errors, body=None if value is _UNDEFINED else value)
        return await route.run(self.services, number, parsed)

    @staticmethod
    def _parse(body: bytes) -> Any:
        """Starlette's ``request.json()`` and FastAPI's refusals of what it cannot parse."""
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ],
                body=exc.doc,
            ) from exc
        except Exception as exc:  # as FastAPI: bad encoding, too deep, ...
            raise StarletteHTTPException(400, "There was an error parsing the body") from exc

    async def _read(self, receive: Receive) -> bytes:
        """The whole body, counted against ``max_body`` as the limiter in the app does."""
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                total += len(chunk)
                if total > self.max_body:
                    raise StarletteHTTPException(413, "Content Too Large")
                if chunk:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            elif message["type"] == "http.disconnect":
                # FastAPI answers 400 to a client that is gone; so does this.
                raise StarletteHTTPException(400, "There was an error parsing the body")

    async def _refuse(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's exception handler's answer; none, or a failing one: 500 and raise,
        as FastAPI's outermost middleware does (uvicorn logs the traceback)."""
        handler = next(
            (
                self.app.exception_handlers[t]
                for t in type(exc).__mro__
                if t in self.app.exception_handlers
            ),
            None,
        )
        try:
            if handler is None:
                raise exc
            answered = handler(Request(scope, receive), exc)
            response = await answered if inspect.isawaitable(answered) else answered
        except Exception:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)


def create_asgi(services: Services, *, fast: bool = True) -> App:
    """The control API as the agent serves it: the guard, the fast routes, FastAPI.

    ``fast=False``: the guard in front of FastAPI alone (every route through its stack).
    """
    api = create_app(services, guard=False)
    inner: App = FastRoutes(api, services) if fast else api
    return RequestGuard(inner, policy=token_policy(services), max_body=services.max_body)
