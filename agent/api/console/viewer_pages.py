"""The Event Viewer: alarms and events, newest first, filtered and paged, live on its first
page; one alarm's page with its history; acknowledge, unacknowledge and clear with a note
(the alarm manager's operations, as the control API does them)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy import Engine
from starlette.datastructures import QueryParams

from agent.alarms import queries
from agent.alarms.catalog import Kind
from agent.alarms.severity import Severity
from agent.api.console.common import (
    CONSOLE_USER,
    ActingDep,
    ServicesDep,
    SessionDep,
    back_to,
    fragment,
    message_page,
    not_done,
    render,
)
from agent.api.schemas import MAX_ID
from agent.api.services import Services
from agent.errors import AlarmError

PAGE = 50
"""Alarms, and events, on one page of the viewer."""
MAX_TYPE = 64
"""As long as a type id can be in the store (alarms.type_id)."""
MAX_RESOURCE = 255
MAX_BACK = 2000
STATES = ("active", "cleared", "all")
SEVERITIES = tuple(s.value for s in Severity)


class BadQuery(Exception):
    """A viewer URL whose filters or cursors are not valid (422, a page saying why)."""


@dataclass(frozen=True, slots=True)
class View:
    """What the viewer shows: its filters, and where each table's page starts.

    A cursor is an id (alarms) or a sequence number (events); 0 is no cursor. ``before``
    pages back (older), ``after`` forward (newer); both zero: the newest page, the only
    live one (older pages would change under the reader's eyes)."""

    severities: tuple[str, ...] = ()
    type: str = ""
    resource: str = ""
    state: str = "active"
    before: int = 0
    after: int = 0
    events_before: int = 0
    events_after: int = 0

    @property
    def newest(self) -> bool:
        return not (self.before or self.after or self.events_before or self.events_after)

    def query(self, **changes: Any) -> str:
        """This view's query string (with ``changes``), without its defaults."""
        view = replace(self, **changes)
        pairs: list[tuple[str, str | int]] = [("severity", s) for s in view.severities]
        pairs += [
            (name, value)
            for name, value in (
                ("type", view.type),
                ("resource", view.resource),
                ("state", "" if view.state == "active" else view.state),
                ("before", view.before),
                ("after", view.after),
                ("events_before", view.events_before),
                ("events_after", view.events_after),
            )
            if value
        ]
        return urlencode(pairs)

    def url(self, path: str = "/ui/", **changes: Any) -> str:
        query = self.query(**changes)
        return f"{path}?{query}" if query else path

    def filters(self) -> dict[str, Any]:
        """The query arguments shared by the alarms' and the events' queries."""
        return {
            "severities": [Severity(s) for s in self.severities] or None,
            "type_id": self.type or None,
            "resource": self.resource or None,
        }


def _cursor(params: QueryParams, name: str) -> int:
    raw = params.get(name, "").strip()
    if not raw:
        return 0
    # isdigit() alone accepts other scripts' digits; the length bound comes first.
    if len(raw) > 19 or not (raw.isascii() and raw.isdigit()) or not 0 <= int(raw) <= MAX_ID:
        raise BadQuery(f"{name} must be a number from 0 to {MAX_ID}")
    return int(raw)


def view_of(params: QueryParams) -> View:
    """The viewer's query, checked; BadQuery says what is wrong. Empty values (what the
    filter form sends for "any") are no filter; unknown parameters are ignored."""
    chosen = [s for s in params.getlist("severity") if s]
    if len(chosen) > len(SEVERITIES) or any(s not in SEVERITIES for s in chosen):
        raise BadQuery(f"severity must be one of: {', '.join(SEVERITIES)}")
    type_id = params.get("type", "").strip()
    if len(type_id) > MAX_TYPE:
        raise BadQuery(f"type is at most {MAX_TYPE} characters")
    resource = params.get("resource", "").strip()
    if len(resource) > MAX_RESOURCE:
        raise BadQuery(f"resource is at most {MAX_RESOURCE} characters")
    state = params.get("state", "") or "active"
    if state not in STATES:
        raise BadQuery(f"state must be one of: {', '.join(STATES)}")
    return View(
        # In the catalog's order, once each: the URLs of one filter are one URL.
        severities=tuple(s for s in SEVERITIES if s in chosen),
        type=type_id,
        resource=resource,
        state=state,
        before=_cursor(params, "before"),
        after=_cursor(params, "after"),
        events_before=_cursor(params, "events_before"),
        events_after=_cursor(params, "events_after"),
    )


def safe_back(back: str) -> str | None:
    """``back`` when it is a console page of this host (a path under /ui/), else None:
    a form's return address must never send the browser elsewhere."""
    if not back:
        return "/ui/"
    if len(back) > MAX_BACK or not back.isascii() or not back.isprintable() or "\\" in back:
        return None
    parts = urlsplit(back)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/"):
        return None
    # No dot segments: "/ui/../api" is outside the console once a browser resolves it.
    if any(segment in {".", ".."} for segment in parts.path.split("/")):
        return None
    return back


def viewer_router() -> APIRouter:
    router = APIRouter()

    @router.get("/")
    async def viewer(request: Request, session: SessionDep, services: ServicesDep) -> Response:
        try:
            view = view_of(request.query_params)
        except BadQuery as exc:
            return message_page(422, f"Not shown: {exc}.")
        data = await _viewer_data(services, view)
        return await render(
            request,
            "viewer.html",
            session,
            services,
            "viewer",
            types=_type_choices(services, view),
            severity_choices=SEVERITIES,
            states=STATES,
            **data,
        )

    @router.get("/fragments/viewer")
    async def tables(request: Request, session: SessionDep, services: ServicesDep) -> Response:
        # The tables alone: what the page's script puts in place after each change, for
        # the same filters (its data-fragment URL carries the page's query).
        try:
            view = view_of(request.query_params)
        except BadQuery as exc:
            return message_page(422, f"Not shown: {exc}.")
        data = await _viewer_data(services, view)
        return await fragment(request, "viewer_tables.html", session, services, **data)

    @router.get("/alarms/{alarm_id}")
    async def alarm_page(
        request: Request, session: SessionDep, services: ServicesDep, alarm_id: str
    ) -> Response:
        data = await _alarm_data(services, alarm_id)
        if data is None:
            return message_page(404, f"No alarm with id {alarm_id[:20]!r}.")
        return await render(request, "alarm.html", session, services, "viewer", **data)

    @router.get("/fragments/alarms/{alarm_id}")
    async def alarm_fragment(
        request: Request, session: SessionDep, services: ServicesDep, alarm_id: str
    ) -> Response:
        data = await _alarm_data(services, alarm_id)
        if data is None:
            return message_page(404, f"No alarm with id {alarm_id[:20]!r}.")
        return await fragment(request, "alarm_detail.html", session, services, **data)

    @router.post("/alarms/{alarm_id}/{action}")
    async def act(
        session: ActingDep,
        services: ServicesDep,
        alarm_id: Annotated[int, PathParam(ge=1, le=MAX_ID)],
        action: Literal["ack", "unack", "clear"],
        note: Annotated[str, Form(max_length=1000)] = "",
        back: Annotated[str, Form(max_length=MAX_BACK)] = "",
    ) -> Response:
        """Acknowledge, unacknowledge or clear an alarm with a note: the alarm manager's
        operations, as `POST /api/v1/alarms/{id}/ack|unack|clear` do them; then the page
        named by ``back`` (a console page; the viewer without one)."""
        # Checked before acting: a refused return address means a forged form.
        target = safe_back(back)
        if target is None:
            return message_page(422, "Not done: the form's return page is not a console page.")
        manager, text = services.manager, note.strip() or None
        try:
            if action == "clear":
                await manager.clear(alarm_id, note=text, by=CONSOLE_USER, bounded=True)
            else:
                await manager.acknowledge(
                    alarm_id, acknowledge=action == "ack", note=text, by=CONSOLE_USER, bounded=True
                )
        except AlarmError as exc:
            return not_done(exc)
        return back_to(target)

    return router


def _engine(services: Services) -> Engine:
    return services.store.engine if services.store is not None else services.manager.engine


def _type_choices(services: Services, view: View) -> list[tuple[str, list[tuple[str, str]]]]:
    """The type filter's options, (group label, [(id, label)]), alarms then events; a
    type no longer in the catalog but asked for stays selectable."""
    groups: dict[Kind, list[tuple[str, str]]] = {Kind.ALARM: [], Kind.EVENT: []}
    for found in sorted(services.manager.catalog, key=lambda t: t.name.lower()):
        vendor = f", {found.vendor.name}" if found.vendor is not None else ""
        groups.setdefault(found.kind, []).append((found.id, f"{found.name} ({found.id}{vendor})"))
    choices = [("Alarm types", groups[Kind.ALARM]), ("Event types", groups[Kind.EVENT])]
    if view.type and view.type not in services.manager.catalog:
        choices.append(("No longer defined", [(view.type, view.type)]))
    return choices


def _page(
    rows: list[dict[str, Any]], before: int, after: int
) -> tuple[list[dict[str, Any]], bool, bool] | None:
    """One page of ``rows`` (oldest first, up to PAGE + 1 of them, read in the cursor's
    direction), newest first, and whether there are older and newer ones; None when a
    "newer" cursor reached the newest page (that page is shown instead, live)."""
    more = len(rows) > PAGE
    if after:
        if not more:
            return None
        return list(reversed(rows[:PAGE])), True, True
    shown = rows[-PAGE:]
    return list(reversed(shown)), more, bool(before)


async def _viewer_data(services: Services, view: View) -> dict[str, Any]:
    """The alarms (of ``view.state``) and the events, each a page, newest first, with
    their "older" and "newer" URLs (None: no such page)."""
    engine, filters = _engine(services), view.filters()

    def read_alarms(current: View) -> list[dict[str, Any]]:
        return queries.list_alarms(
            engine,
            state=current.state,
            limit=PAGE + 1,
            after_id=current.after,
            before_id=current.before,
            newest=not current.after,
            **filters,
        )

    def read_events(current: View) -> list[dict[str, Any]]:
        return queries.list_events(
            engine,
            limit=PAGE + 1,
            after_seq=current.events_after,
            before_seq=current.events_before,
            **filters,
        )

    def read() -> tuple[Any, Any, int, View]:
        current = view
        alarms = _page(read_alarms(current), current.before, current.after)
        if alarms is None:
            current = replace(current, after=0)
            alarms = _page(read_alarms(current), 0, 0)
        events = _page(read_events(current), current.events_before, current.events_after)
        if events is None:
            current = replace(current, events_after=0)
            events = _page(read_events(current), 0, 0)
        assert alarms is not None, "a page without a cursor is always one"
        assert events is not None, "a page without a cursor is always one"
        total = queries.count_alarms(engine, state=current.state, **filters)
        return alarms, events, total, current

    (alarms, older, newer), (events, older_ev, newer_ev), total, current = await asyncio.to_thread(
        read
    )
    return {
        "view": current,
        "here": current.url(),
        "live": current.newest,
        "fragment_url": current.url("/ui/fragments/viewer"),
        "alarms": alarms,
        "alarm_total": total,
        "older": current.url(before=alarms[-1]["id"], after=0) if older else None,
        "newer": current.url(after=alarms[0]["id"], before=0) if newer and alarms else None,
        "events": events,
        "older_events": (
            current.url(events_before=events[-1]["seq"], events_after=0) if older_ev else None
        ),
        "newer_events": (
            current.url(events_after=events[0]["seq"], events_before=0)
            if newer_ev and events
            else None
        ),
    }


async def _alarm_data(services: Services, alarm_id: str) -> dict[str, Any] | None:
    """One alarm with its history and its type's inventory entry; None when no such id
    (or not an id at all: the same "no such alarm" page, not a validation error)."""
    if not (alarm_id.isascii() and alarm_id.isdigit()) or len(alarm_id) > 19:
        return None
    number = int(alarm_id)
    if not 1 <= number <= MAX_ID:
        return None
    alarm: Mapping[str, Any] | None = await asyncio.to_thread(
        queries.get_alarm, _engine(services), number
    )
    if alarm is None:
        return None
    described = services.manager.catalog.describe(alarm["type"])
    path = f"/ui/alarms/{number}"
    return {
        "alarm": alarm,
        "described": described,
        "here": path,
        "fragment_url": f"/ui/fragments/alarms/{number}",
        "viewer_url": View(resource=alarm["resource"], state="all").url(),
    }
