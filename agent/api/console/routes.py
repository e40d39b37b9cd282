"""The console's pages under ``/ui/``: login by a one-time link, the Event Viewer, its
live updates. The pages read through the same queries as the control API; the link is
made by the API (``POST /api/v1/console/link``, operators' token), so nothing here accepts
a token and nothing here opens without a session."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Cookie, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.routing import Mount

from agent.alarms import queries
from agent.api.console.changes import MAX_STREAMS, ChangeSignal
from agent.api.console.sessions import ConsoleSessions, Session
from agent.api.services import Services, services_of
from agent.api.statuses import status_of
from agent.errors import AlarmError

HERE = Path(__file__).parent
COOKIE = "provsync_session"
CONSOLE_USER = "console"
"""Who the console's actions are recorded as (its logins carry no user name)."""
# Jinja2Templates turns autoescaping on for .html templates: every value is data.
_templates = Jinja2Templates(directory=HERE / "templates")

ServicesDep = Annotated[Services, Depends(services_of)]


class NeedsLogin(Exception):
    """No live session: the page says how to get a login link."""


async def _session_of(
    request: Request, provsync_session: Annotated[str | None, Cookie()] = None
) -> Session:
    sessions: ConsoleSessions = request.app.state.console_sessions
    session = sessions.get(provsync_session)
    if session is None:
        raise NeedsLogin
    return session


SessionDep = Annotated[Session, Depends(_session_of)]
"""The browser's live session; without one, the login help page (401)."""


def console_router(sessions: ConsoleSessions, signal: ChangeSignal) -> APIRouter:
    """The pages; ``sessions`` must also be the app's ``state.console_sessions``."""
    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.get("/login")
    async def login(code: Annotated[str, Query(max_length=100)] = "") -> Response:
        session_id = sessions.redeem(code)
        if session_id is None:
            return _login_page(403, "This login link is not valid (used, expired or wrong).")
        answer = RedirectResponse("/ui/", status_code=303)
        answer.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", path="/ui")
        return answer

    @router.post("/logout")
    async def logout(
        session: SessionDep,
        csrf: Annotated[str, Form(max_length=100)] = "",
        provsync_session: Annotated[str | None, Cookie()] = None,
    ) -> Response:
        if not sessions.csrf_ok(session, csrf):
            return _login_page(403, "The form was refused: its CSRF token is missing or wrong.")
        sessions.end(provsync_session or "")
        answer = _login_page(200, "Logged out.")
        answer.delete_cookie(COOKIE, path="/ui")
        return answer

    @router.get("/")
    async def viewer(request: Request, session: SessionDep, services: ServicesDep) -> Response:
        return await _viewer(request, "viewer.html", session, services)

    @router.get("/fragments/viewer")
    async def fragment(request: Request, session: SessionDep, services: ServicesDep) -> Response:
        # The tables alone: what the page's script puts in place after each change.
        return await _viewer(request, "viewer_tables.html", session, services)

    @router.post("/alarms/{alarm_id}/{action}")
    async def act(
        session: SessionDep,
        services: ServicesDep,
        alarm_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
        action: Literal["ack", "unack", "clear"],
        csrf: Annotated[str, Form(max_length=100)] = "",
        note: Annotated[str, Form(max_length=1000)] = "",
    ) -> Response:
        """Acknowledge, unacknowledge or clear an alarm with a note: the alarm manager's
        operations, as `POST /api/v1/alarms/{id}/ack|unack|clear` do them."""
        if not sessions.csrf_ok(session, csrf):
            return _login_page(403, "The form was refused: its CSRF token is missing or wrong.")
        manager, text = services.manager, note.strip() or None
        try:
            if action == "clear":
                await manager.clear(alarm_id, note=text, by=CONSOLE_USER, bounded=True)
            else:
                await manager.acknowledge(
                    alarm_id, acknowledge=action == "ack", note=text, by=CONSOLE_USER, bounded=True
                )
        except AlarmError as exc:
            return _login_page(status_of(exc), f"Not done: {exc}")
        return RedirectResponse("/ui/", status_code=303)

    @router.get("/stream")
    async def stream(session: SessionDep) -> Response:
        if signal.streams >= MAX_STREAMS:
            return Response("too many live pages", status_code=503, headers={"Retry-After": "5"})
        return StreamingResponse(
            signal.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    router.routes.append(_static())
    return router


def _static() -> Mount:
    return Mount("/ui/static", app=StaticFiles(directory=HERE / "static"), name="console-static")


def _login_page(status: int, message: str) -> HTMLResponse:
    body = _templates.get_template("login.html").render(message=message)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def login_required_answer() -> HTMLResponse:
    return _login_page(
        401, "Log in with a link from the agent's host: run `provsync console` there."
    )


def _names(services: Services) -> dict[str, Any]:
    """For the templates: a type's name and its vendor's name ("" when none)."""
    catalog = services.manager.catalog

    def vendor(type_id: str) -> str:
        found = catalog.describe(type_id).vendor
        return found.name if found is not None else ""

    return {"type_name": lambda t: catalog.describe(t).name, "vendor": vendor}


async def _viewer(
    request: Request, template: str, session: Session, services: Services
) -> Response:
    alarms, events = await _viewer_data(services)
    page: Response = _templates.TemplateResponse(
        request,
        template,
        {"alarms": alarms, "events": events, "csrf": session.csrf, **_names(services)},
    )
    return page


async def _viewer_data(services: Services) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Active alarms, last changed first, and the newest events, newest first."""
    engine = services.store.engine if services.store is not None else services.manager.engine
    alarms = await asyncio.to_thread(queries.list_alarms, engine, limit=500)
    alarms.sort(key=lambda a: (a["changed_at"], a["id"]), reverse=True)
    events = list(reversed(await asyncio.to_thread(queries.list_events, engine, limit=50)))
    return alarms, events
