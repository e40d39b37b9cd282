"""The control API application: middleware, error answers, and the route modules.

Every route under ``/api/`` but ``/api/v1/health`` needs ``Authorization: Bearer
<token>``, checked from the headers before any body is read (:mod:`agent.api.guard`);
the OpenAPI document and ``/docs`` are public. The routes are in modules by resource
(:mod:`~agent.api.status_routes`, :mod:`~agent.api.alarm_routes`,
:mod:`~agent.api.event_routes`, :mod:`~agent.api.sync_routes`,
:mod:`~agent.api.sharing_routes`) and get what they use from :class:`Services` through
the typed dependencies of :mod:`agent.api.services`. Errors are JSON ``{"error": "..."}``
with a 4xx status that says what is wrong (:mod:`agent.api.statuses`; 503 when the store
cannot do it now, with ``Retry-After`` when the writer is overloaded); a request is either
applied whole (after its commit) or not at all.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from agent import __version__
from agent.api.alarm_routes import alarm_router
from agent.api.console.changes import ChangeSignal
from agent.api.console.headers import ConsoleHeaders
from agent.api.console.routes import (
    FormRefused,
    NeedsLogin,
    console_error_answer,
    console_router,
    is_console,
    login_required_answer,
    message_page,
    refused_answer,
)
from agent.api.console.sessions import ConsoleSessions
from agent.api.console_routes import console_link_router
from agent.api.event_routes import event_router
from agent.api.guard import Policy, RequestGuard, Scope
from agent.api.notify_routes import NOTIFY_ROUTE, notify_router
from agent.api.services import Services, authorize, authorize_element
from agent.api.sharing_routes import ELEMENT_ROUTES, sharing_router
from agent.api.status_routes import HEALTH, health_router, shutdown_router, status_router
from agent.api.statuses import status_of as _status_of
from agent.api.sync_routes import sync_router
from agent.errors import OverloadedError, ProvsyncError
from agent.store.outage import ThrottledLog, is_store_outage

__all__ = ["HEALTH", "Services", "create_app", "token_policy", "tokens_policy"]


def token_policy(services: Services) -> Policy:
    """The tokens a request needs, from its method and path alone (no body read yet).

    Public: the health route, and what is not under ``/api/`` (OpenAPI, docs, the
    console, whose pages check their own session). The elements' token opens the
    element-to-hub routes (``ELEMENT_ROUTES``) only; everything else under ``/api/``
    needs the operators' token, unknown paths included (nobody learns which routes exist
    without it). The routes' own dependencies say the same again.
    """
    return tokens_policy(services.token, services.element_token)


def tokens_policy(token: str, element_token: str) -> Policy:
    """:func:`token_policy` for these tokens (a standby's gate is the leader's)."""
    operators = (token,)
    elements = (token, element_token)

    def policy(scope: Scope) -> tuple[str, ...] | None:
        path = str(scope.get("path", ""))
        if path == HEALTH or not path.startswith("/api/"):
            return None
        if scope.get("method") == "POST" and (path in ELEMENT_ROUTES or path == NOTIFY_ROUTE):
            return elements
        return operators

    return policy


def create_app(services: Services, *, guard: bool = True) -> FastAPI:
    """The FastAPI application: every route, the OpenAPI document, the error answers.

    ``guard``: with the RequestGuard as its outermost middleware. False when the caller
    puts the guard in front itself (:func:`agent.api.fast_routes.create_asgi`).
    """
    app = FastAPI(
        title="provsync control API",
        version=__version__,
        description="Operate the provsync agent: alarms, events, status.",
    )
    app.state.services = services
    store_failures = ThrottledLog()
    # The last added is the outermost: the guard answers from the headers (token, then a
    # declared length) before the limiter, behind it, counts what a route reads.
    app.add_middleware(ConsoleHeaders)
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=services.max_body)
    if guard:
        app.add_middleware(RequestGuard, policy=token_policy(services), max_body=services.max_body)

    # In the order the OpenAPI document lists them.
    app.include_router(health_router())
    app.include_router(status_router())
    alarms = alarm_router()
    app.include_router(alarms)
    # For agent.api.fast_routes: these routes' own declarations (fields, dependencies).
    app.state.alarm_router = alarms
    app.include_router(event_router())
    app.include_router(shutdown_router())
    app.include_router(sync_router(authorize))
    app.include_router(sharing_router(authorize, authorize_element))
    app.include_router(notify_router(authorize_element))
    # The web console (/ui/): its sessions live as long as the app does.
    sessions = ConsoleSessions()
    app.state.console_sessions = sessions
    app.include_router(console_link_router(authorize, sessions))
    signal = ChangeSignal(services.manager)
    services.on_stop.append(signal.close)
    app.include_router(console_router(sessions, signal))

    @app.exception_handler(NeedsLogin)
    async def _login(request: Request, exc: NeedsLogin) -> HTMLResponse:
        return login_required_answer()

    @app.exception_handler(FormRefused)
    async def _refused(request: Request, exc: FormRefused) -> HTMLResponse:
        return refused_answer(exc)

    @app.exception_handler(ProvsyncError)
    async def _ours(request: Request, exc: ProvsyncError) -> Response:
        if is_console(request):  # a refusal outside a page's own handling: still a page
            return message_page(_status_of(exc), f"Not done: {exc}")
        if isinstance(exc, OverloadedError):
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"error": str(exc)}, status_code=_status_of(exc))

    @app.exception_handler(DBAPIError)
    async def _store(request: Request, exc: DBAPIError) -> Response:
        # A read the store could not answer: expected while it is down (one throttled
        # line, no traceback); anything else is a bug and keeps uvicorn's traceback.
        if not is_store_outage(exc):
            raise exc
        store_failures.warning("store read failed", exc)
        if is_console(request):
            return message_page(503, "The store is not available; retry later.")
        return JSONResponse({"error": "the store is not available; retry later"}, 503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code != 413 and is_console(request):
            # A console URL no page has (404), or the wrong method (405): a page.
            return console_error_answer(exc.status_code, str(exc.detail))
        if exc.status_code == 413:
            # The rest of the body is still on the wire: close rather than read it.
            return JSONResponse(
                {"error": f"request body larger than {services.max_body} bytes"},
                status_code=413,
                headers={"Connection": "close"},
            )
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        said = "; ".join(problems) or "invalid request"
        if is_console(request):
            return console_error_answer(422, f"Not done, the request is not valid: {said}")
        return JSONResponse({"error": said}, status_code=422)

    return app
