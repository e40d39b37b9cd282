"""The console under ``/ui/``: login by a one-time link, logout, the live stream, the
static files, and each page module's routes. The link is made by the API (``POST
/api/v1/console/link``, operators' token), so nothing here accepts a token and nothing
but the login opens without a session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

from agent.api.console.banner import banners_of
from agent.api.console.changes import MAX_STREAMS, ChangeSignal
from agent.api.console.common import (
    COOKIE,
    HERE,
    FormRefused,
    NeedsLogin,
    ServicesDep,
    SessionDep,
    console_error_answer,
    fragment,
    is_console,
    login_required_answer,
    message_page,
    refused_answer,
    templates,
)
from agent.api.console.element_pages import element_router
from agent.api.console.sessions import ConsoleSessions
from agent.api.console.sharing_pages import sharing_router
from agent.api.console.viewer_pages import viewer_router

__all__ = [
    "FormRefused",
    "NeedsLogin",
    "console_error_answer",
    "console_router",
    "is_console",
    "login_required_answer",
    "message_page",
    "refused_answer",
]


def _bad_link() -> Response:
    return message_page(
        403, "This login link is not valid (used, expired or wrong).", login_help=True
    )


def console_router(sessions: ConsoleSessions, signal: ChangeSignal) -> APIRouter:
    """The pages; ``sessions`` must also be the app's ``state.console_sessions``."""
    router = APIRouter(prefix="/ui", include_in_schema=False)

    # The link only shows a button; the code is used when it is pressed. Mail and chat
    # link checkers (Safe Links, unfurlers) fetch a link before the person clicks it: a
    # GET that used the code up would leave the operator a dead link. The POST is made
    # by this page, so its answer's SameSite=Strict cookie travels on the redirect to
    # /ui/ (on a redirect of the cross-site click itself it would not).
    @router.get("/login")
    async def login_page(code: Annotated[str, Query(max_length=100)] = "") -> Response:
        if not sessions.valid(code):
            return _bad_link()
        body = templates.get_template("login_form.html").render(code=code)
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @router.post("/login")
    async def login(code: Annotated[str, Form(max_length=100)] = "") -> Response:
        session_id = sessions.redeem(code)
        if session_id is None:
            return _bad_link()
        answer = RedirectResponse("/ui/", status_code=303)
        answer.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", path="/ui")
        return answer

    # Its form's token only, not ActingDep: a read-only session may log out too.
    @router.post("/logout")
    async def logout(
        session: SessionDep,
        csrf: Annotated[str, Form(max_length=100)] = "",
        provsync_session: Annotated[str | None, Cookie()] = None,
    ) -> Response:
        if not sessions.csrf_ok(session, csrf):
            return message_page(403, "The form was refused: its CSRF token is missing or wrong.")
        sessions.end(provsync_session or "")
        answer = message_page(200, "Logged out.", login_help=True)
        answer.delete_cookie(COOKIE, path="/ui")
        return answer

    @router.get("/fragments/banners")
    async def banners(request: Request, session: SessionDep, services: ServicesDep) -> Response:
        return await fragment(
            request, "banners.html", session, services, banners=await banners_of(services)
        )

    @router.get("/stream")
    async def stream(
        session: SessionDep, provsync_session: Annotated[str | None, Cookie()] = None
    ) -> Response:
        if signal.streams >= MAX_STREAMS:
            return Response("too many live pages", status_code=503, headers={"Retry-After": "5"})
        return StreamingResponse(
            signal.stream(lambda: sessions.alive(provsync_session)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    router.include_router(viewer_router())
    router.include_router(element_router())
    router.include_router(sharing_router())
    router.routes.append(
        Mount("/ui/static", app=StaticFiles(directory=HERE / "static"), name="console-static")
    )
    return router
