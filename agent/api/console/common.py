"""What every console page shares: the templates, the session and its CSRF check, the
page frame (navigation, the banner) and the answers for refused or failed actions.

A page module (viewer, elements, sharing...) builds its router with these; the actions
it offers call the same service methods as the control API's routes (no rule twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Cookie, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from agent.api.console.banner import banners_of
from agent.api.console.links import resolution_link
from agent.api.console.sessions import ConsoleSessions, Session
from agent.api.services import Services, services_of
from agent.api.statuses import status_of
from agent.errors import ProvsyncError

HERE = Path(__file__).parent
COOKIE = "provsync_session"
CONSOLE_USER = "console"
"""Who the console's actions are recorded as (its logins carry no user name)."""
# Jinja2Templates turns autoescaping on for .html templates: every value is data.
templates = Jinja2Templates(directory=HERE / "templates")

ServicesDep = Annotated[Services, Depends(services_of)]

NAV = (
    ("viewer", "/ui/", "Event Viewer"),
    ("elements", "/ui/elements", "Elements"),
    ("jobs", "/ui/jobs", "Jobs"),
    ("sharing", "/ui/sharing", "Sharing"),
    ("reconcile", "/ui/reconcile", "Sync and Reconcile"),
    ("distribution", "/ui/distribution-errors", "Distribution errors"),
    ("activation", "/ui/activation", "Activation"),
)
"""The console's pages in the navigation bar: (id, path, label)."""


class NeedsLogin(Exception):
    """No live session: the page says how to get a login link (401)."""


class FormRefused(Exception):
    """A form without its session's CSRF token, or an action of a read-only session
    (403, nothing done)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def session_of(
    request: Request, provsync_session: Annotated[str | None, Cookie()] = None
) -> Session:
    sessions: ConsoleSessions = request.app.state.console_sessions
    session = sessions.get(provsync_session)
    if session is None:
        raise NeedsLogin
    return session


SessionDep = Annotated[Session, Depends(session_of)]
"""The browser's live session; without one, the login help page (401)."""


async def acting_session(
    session: SessionDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Session:
    """A session allowed to act: the form carries its CSRF token, and the session is not
    a read-only (viewer) one."""
    if not ConsoleSessions.csrf_ok(session, csrf):
        raise FormRefused("The form was refused: its CSRF token is missing or wrong.")
    if session.read_only:
        raise FormRefused("This is a read-only console session: it cannot change anything.")
    return session


ActingDep = Annotated[Session, Depends(acting_session)]
"""For every POST of the console: the session, its CSRF token checked (403 otherwise)."""


def message_page(status: int, message: str, *, login_help: bool = False) -> HTMLResponse:
    """A page with one message (a refusal, an action not done); ``login_help``: it says
    how to get a login link (no session), else it links back to the console."""
    body = templates.get_template("login.html").render(message=message, login_help=login_help)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def login_required_answer() -> HTMLResponse:
    return message_page(
        401,
        "Log in with a link from the agent's host: run `provsync console` there.",
        login_help=True,
    )


def is_console(request: Request) -> bool:
    """A request for a console URL: its errors are pages, not the API's JSON."""
    path: str = request.url.path
    return path == "/ui" or path.startswith("/ui/")


def console_error_answer(status: int, detail: str) -> HTMLResponse:
    """FastAPI's own refusal of a console request (no such page, wrong method, a
    parameter its declaration refuses) as a console page. ``detail`` is FastAPI's
    wording or the parameters' messages; never the values sent."""
    if status == 404:
        return message_page(404, "Not found: the console has no such page.")
    if status == 405:
        return message_page(405, "Not done: that page does not take this method.")
    return message_page(status, detail)


def refused_answer(exc: FormRefused) -> HTMLResponse:
    return message_page(403, exc.message)


def not_done(exc: ProvsyncError) -> HTMLResponse:
    """An action the service refused: its own message, with the API's status code."""
    return message_page(status_of(exc), f"Not done: {exc}")


T = TypeVar("T")


async def attempt(action: Awaitable[T]) -> T | HTMLResponse:
    """Run a service call; its refusal becomes the "Not done" page."""
    try:
        return await action
    except ProvsyncError as exc:
        return not_done(exc)


def back_to(path: str) -> RedirectResponse:
    """After an action: the page again (Post/Redirect/Get)."""
    return RedirectResponse(path, status_code=303)


def when(value: str | None, otherwise: str = "") -> str:
    """An API time ("2026-01-02T03:04:05.678Z") as people read it, to the second; the
    ``<time>`` element keeps the exact one in its datetime attribute."""
    if not value:
        return otherwise
    return value[:19].replace("T", " ") + " UTC"


def names(services: Services) -> dict[str, Callable[[str], str]]:
    """For the templates: a type's name and its vendor's name ("" when none)."""
    catalog = services.manager.catalog

    def vendor(type_id: str) -> str:
        found = catalog.describe(type_id).vendor
        return found.name if found is not None else ""

    return {"type_name": lambda t: catalog.describe(t).name, "vendor": vendor}


async def render(
    request: Request,
    template: str,
    session: Session,
    services: Services,
    page: str,
    **context: Any,
) -> Response:
    """A console page: ``page`` is its NAV id (highlighted); every page carries the CSRF
    token for its forms, whether the session may act, and the banners."""
    answer: Response = templates.TemplateResponse(
        request,
        template,
        {
            "csrf": session.csrf,
            "read_only": session.read_only,
            "nav": NAV,
            "page": page,
            "banners": await banners_of(services),
            "resolution_link": resolution_link,
            **names(services),
            **context,
        },
        headers={"Cache-Control": "no-store"},
    )
    return answer


async def fragment(
    request: Request, template: str, session: Session, services: Services, **context: Any
) -> Response:
    """A part of a page, for its script to put in place after a change (no frame)."""
    answer: Response = templates.TemplateResponse(
        request,
        template,
        {
            "csrf": session.csrf,
            "read_only": session.read_only,
            "resolution_link": resolution_link,
            **names(services),
            **context,
        },
        headers={"Cache-Control": "no-store"},
    )
    return answer
