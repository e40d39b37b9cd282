"""Sharing: the group and each element's state (start sharing), the Sync and Reconcile
wizard, the distribution errors (retry, delete) and the activation of messaging
elements. Every action is the sharing service's, as the control API's routes call it;
what a page adds is only what it shows first: the values side by side, the service's
plan of a decision in words (SharingService.plan: the resolve's own computation), a
confirmation before a delete. A confirmation carries the ids it showed, and the service
acts on exactly those (the ones still open or failed when it runs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import Field

from agent.alarms import queries
from agent.alarms.records import iso
from agent.api.console.banner import banners_of
from agent.api.console.common import (
    CONSOLE_USER,
    ActingDep,
    ServicesDep,
    SessionDep,
    attempt,
    back_to,
    fragment,
    message_page,
    not_done,
    render,
    when,
)
from agent.api.console.sessions import Session
from agent.api.services import Services
from agent.api.statuses import status_of
from agent.errors import InvalidRequest, ProvsyncError, SharingError
from agent.sharing.activation import ACTIVATION_REQUIRED
from agent.sharing.group import NOT_SHARING
from agent.sharing.reconcile import Planned, resolved_before
from agent.sharing.service import SharingService
from agent.store.access import StoreAccess
from agent.store.conflicts import Conflict
from agent.store.element_types import MESSAGING
from agent.store.rows import Data

ERRORS_SHOWN = 500
"""The failed distributions a page lists (a page costs a bounded read); a bulk action
takes the ones listed, and says to run it again for the rest."""
CONFLICTS_SHOWN = 100
"""The open conflicts the wizard shows (it is rendered again on every change, in every
tab); a bulk decision takes the ones shown, and the rest wait for the next round."""
CATEGORIES = (
    ("unresolved", "Unresolved: both sides changed the same data differently"),
    ("review", "For review: the element's record matches a different hub record"),
    ("automatic", "Automatic: merged both ways, open for a look"),
)
"""The conflict categories in the wizard's order, with what each means."""
TAKES = {"hub": "take the hub's value", "element": "take the element's value", "skip": "skip"}

Take = Literal["hub", "element", "skip"]
Name = Annotated[str, Form(max_length=64)]
RowIdForm = Annotated[int | None, Form(ge=1, le=2**63 - 1)]
RowIdsForm = Annotated[
    list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None,
    Form(max_length=max(ERRORS_SHOWN, CONFLICTS_SHOWN)),
]
"""The ids a confirmation (or a list's bulk form) showed: repeated ``ids`` fields."""
ElementQuery = Annotated[str | None, Query(max_length=64)]


# ------------------------------------------------------------------ what the pages show
@dataclass(frozen=True)
class FieldRow:
    """One field of a conflict: each side's value as text ("" shown as absent)."""

    name: str
    hub: str
    element: str
    base: str
    differs: bool


@dataclass(frozen=True)
class ConflictView:
    conflict: Conflict
    fields: list[FieldRow]
    hub_side: str
    """What the hub holds: "" when it has the record, else why there is none."""
    element_side: str
    hub_changed: bool
    """The hub's value is no longer the one the sync saw (the hub column is the hub's
    value now: the one taking the hub's value sends)."""


ABSENT = "(absent)"


def shown(value: object) -> str:
    """A field's value as text: strings as they are, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def stamp(value: datetime | str | None) -> str:
    """A time as the API writes it (RFC 3339, UTC): the ``<time>`` element's datetime;
    `when` makes the text people read from it (the other pages' one format)."""
    if value is None or isinstance(value, str):
        return value or ""
    return iso(value) or ""


def _fields(hub: Data | None, element: Data | None, base: Data | None) -> list[FieldRow]:
    def mapping(data: Data | None) -> Mapping[str, Any]:
        if data is None:
            return {}
        return data if isinstance(data, Mapping) else {"(value)": data}

    sides = mapping(hub), mapping(element), mapping(base)
    names = sorted(set(sides[0]) | set(sides[1]) | set(sides[2]))
    return [
        FieldRow(
            name,
            shown(sides[0].get(name)),
            shown(sides[1].get(name)),
            shown(sides[2].get(name)),
            (name in sides[0]) != (name in sides[1]) or sides[0].get(name) != sides[1].get(name),
        )
        for name in names
    ]


def conflict_view(row: Conflict, hub_now: Data | None) -> ConflictView:
    """``row`` with the hub's value now (``hub_now``), the one a decision works with."""
    return ConflictView(
        row,
        _fields(hub_now, row.element_data, row.base_data),
        "" if hub_now is not None else f"the hub has no {row.cls} {row.hub_key}",
        "" if row.element_data is not None else f"{row.element} has no {row.cls} {row.key}",
        hub_now != row.hub_data,
    )


def _changes(before: Data | None, after: Data | None) -> list[str]:
    """Each field that changes from ``before`` to ``after``, as "name from A to B"."""
    return [
        f"{f.name} from {f.hub or ABSENT} to {f.element or ABSENT}"
        for f in _fields(before, after, None)
        if f.differs
    ]


def explain(plan: Planned) -> str:
    """The service's plan of one decision in words: only what it computed (what is
    written where, over what, sent to whom, which waiting distributions go)."""
    row = plan.conflict
    if plan.take == "skip":
        text = (
            f"Skipping closes the conflict on {row.cls} {row.key} of {row.element}: nothing "
            "changes on the hub or on the element, and their values stay as they are."
        )
    else:
        where = row.element if plan.written_to == "element" else "the hub"
        lead = "Taking the hub's value" if plan.take == "hub" else "Taking the element's value"
        done = []
        for n, change in enumerate(plan.changes):
            place = f"on {where}" if n == 0 else "there"
            if change.op == "delete":
                done.append(f"deletes {change.cls} {change.key} {place}")
            elif change.op == "create":
                done.append(f"creates {change.cls} {change.key} {place}")
            else:
                detail = "; ".join(_changes(plan.replaced, change.data)) or "no field changes"
                done.append(f"sets {change.cls} {change.key} {place}: {detail}")
        receivers = ", ".join(plan.sent_to) or "no other element (none shares now)"
        sent = (
            f"it is sent to {receivers}"
            if plan.written_to == "element"
            else f"it is written to the hub and sent to {receivers}"
        )
        text = f"{lead} {' and '.join(done)}; {sent}."
    if plan.cancelled:
        waiting = ", ".join(
            f"{d.op} {d.cls} {d.key} ({'failed' if d.state == 'error' else d.state})"
            for d in plan.cancelled
        )
        text += f" It cancels what waits for {row.element}: {waiting}."
    if plan.refused:
        text += f" Refused: {plan.refused}; the resolve stops here, nothing of it is done."
    return text


# ------------------------------------------------------------------ the data of each page
async def _sharing_data(sharing: SharingService, store: StoreAccess) -> dict[str, Any]:
    """The group from the service; every element, the ones out of the group too (they
    can be started)."""
    status = await sharing.status()
    listed = {e["name"]: e for e in status["elements"]}
    elements = []
    for element in await asyncio.to_thread(store.elements.all):
        found = listed.get(element.name)
        elements.append(
            {
                "name": element.name,
                "type": element.type,
                "version": element.software_version,
                "in_group": found is not None,
                "sharing": found["sharing"] if found else NOT_SHARING,
                "device_data": element.device_data,
                "pending": found["pending"] if found else 0,
                "errors": found["errors"] if found else 0,
            }
        )
    return {"status": status, "elements": elements, "not_sharing": NOT_SHARING}


def _wizard_order(rows: list[Conflict], element: str | None = None) -> list[Conflict]:
    """The open conflicts (of ``element``) in the wizard's order, the ones it shows: the
    bulk decisions take these, so a decision is on what was seen."""
    order = {category: n for n, (category, _) in enumerate(CATEGORIES)}
    chosen = [r for r in rows if element is None or r.element == element]
    chosen.sort(key=lambda r: (order.get(r.category, len(order)), r.id))
    return chosen[:CONFLICTS_SHOWN]


async def _hub_now(store: StoreAccess, rows: list[Conflict]) -> dict[int, Data | None]:
    """The hub's value now of each conflict's record (the one a decision works with)."""

    def read() -> dict[int, Data | None]:
        return {r.id: store.shared.get(r.cls, r.hub_key) for r in rows}

    return await asyncio.to_thread(read)


async def _reconcile_data(sharing: SharingService, store: StoreAccess) -> dict[str, Any]:
    report = await sharing.conflicts()
    rows = _wizard_order(report.conflicts)
    hub_now = await _hub_now(store, rows)
    groups = [
        (
            category,
            label,
            [conflict_view(c, hub_now[c.id]) for c in rows if c.category == category],
        )
        for category, label in CATEGORIES
    ]
    return {
        "running": report.running,
        "summary": report.summary,
        "total": len(report.conflicts),
        "more": len(report.conflicts) - len(rows),
        "groups": [g for g in groups if g[2]],
        "by_element": sorted({c.element for c in report.conflicts}),
        "stamp": stamp,
        "when": when,
    }


async def _distribution_data(sharing: SharingService, element: str | None) -> dict[str, Any]:
    rows, total = await sharing.failed_distributions(None, element, ERRORS_SHOWN)
    return {
        "rows": rows,
        "total": total,
        "element": element,
        "more": total > len(rows),
        "by_element": sorted({r.element for r in rows}),
        "shown": shown,
        "stamp": stamp,
        "when": when,
    }


async def _activation_data(store: StoreAccess) -> dict[str, Any]:
    """Messaging elements, with the active activation alarms (what changed, per network
    element they are programmed with) that say why each waits."""
    alarms = await asyncio.to_thread(
        queries.list_alarms, store.engine, type_id=ACTIVATION_REQUIRED, limit=1000
    )
    elements = []
    for element in await asyncio.to_thread(store.elements.all):
        if element.type != MESSAGING:
            continue
        waiting = [a for a in alarms if a["resource"] == element.name]
        elements.append({"name": element.name, "uses": element.uses, "alarms": waiting})
    waiting_first = sorted(elements, key=lambda e: (not e["alarms"], e["name"]))
    return {
        "elements": waiting_first,
        "waiting": sum(1 for e in elements if e["alarms"]),
        "stamp": stamp,
        "when": when,
    }


def _where(path: str, element: str | None) -> str:
    return f"{path}?{urlencode({'element': element})}" if element else path


def _running(services: Services) -> tuple[SharingService, StoreAccess] | None:
    """The sharing service and the store it runs on; None: sharing is not running (or
    its store is not open: nothing of it can be shown or done)."""
    if services.sharing is None or services.store is None:
        return None
    return services.sharing, services.store


async def not_running(
    request: Request, session: Session, services: Services, page: str
) -> Response:
    """Every page and action of this module while sharing is not running: one page,
    503 (as the API's sharing routes answer then)."""
    answer = await render(request, "sharing_off.html", session, services, page)
    answer.status_code = 503
    return answer


async def not_running_fragment(request: Request, session: Session, services: Services) -> Response:
    """A live region's refresh while sharing is not running (503: the script keeps what
    it shows, which is the same message)."""
    answer = await fragment(request, "sharing_off_fragment.html", session, services)
    answer.status_code = 503
    return answer


def _partly_resolved(exc: ProvsyncError) -> Response:
    """A bulk resolve refused after some decisions (they stay made): its message says
    how many, so the page is not headed "Not done"."""
    if resolved_before(exc):
        return message_page(status_of(exc), str(exc))
    return not_done(exc)


# ------------------------------------------------------------------ the routes
def sharing_router() -> APIRouter:
    router = APIRouter()

    # ---------------------------------------------------------------- the group
    @router.get("/sharing")
    async def sharing_page(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "sharing")
        data = await _sharing_data(*running)
        return await render(request, "sharing.html", session, services, "sharing", **data)

    @router.get("/fragments/sharing")
    async def sharing_tables(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        running = _running(services)
        if running is None:
            return await not_running_fragment(request, session, services)
        data = await _sharing_data(*running)
        return await fragment(request, "sharing_tables.html", session, services, **data)

    @router.post("/sharing/{name}/start")
    async def start(
        request: Request,
        session: ActingDep,
        services: ServicesDep,
        name: Annotated[str, PathParam(max_length=64)],
    ) -> Response:
        """Start sharing as `POST /api/v1/sharing/start` without a version does it (the
        element is asked for its own)."""
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "sharing")
        sharing = running[0]
        try:
            await sharing.start_sharing(name, None)
        except SharingError as exc:
            # Refused: the page again, its red banner saying why (the frame's banner list
            # shows it too when the refusal was recorded; then once is enough).
            banners = await banners_of(services)
            said = str(exc).rsplit(": ", 1)[-1]  # the why, without its heading
            refused = "" if any(said in b.text for b in banners) else f"Not done: {exc}"
            data = await _sharing_data(*running)
            answer = await render(
                request, "sharing.html", session, services, "sharing", refused=refused, **data
            )
            answer.status_code = 409
            return answer
        except ProvsyncError as exc:
            return not_done(exc)
        return back_to("/ui/sharing")

    # ---------------------------------------------------------------- reconcile
    @router.get("/reconcile")
    async def reconcile_page(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "reconcile")
        data = await _reconcile_data(*running)
        return await render(request, "reconcile.html", session, services, "reconcile", **data)

    @router.get("/fragments/reconcile")
    async def reconcile_tables(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        running = _running(services)
        if running is None:
            return await not_running_fragment(request, session, services)
        data = await _reconcile_data(*running)
        return await fragment(request, "reconcile_tables.html", session, services, **data)

    @router.post("/reconcile/preview")
    async def reconcile_preview(
        request: Request,
        session: ActingDep,
        services: ServicesDep,
        take: Annotated[Take, Form()],
        conflict: RowIdForm = None,
        element: Name = "",
    ) -> Response:
        """What a decision will do, before it is done (the service's plan): its
        confirmation step. A bulk one takes the conflicts the wizard shows (of
        ``element``), and its confirmation carries their ids."""
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "reconcile")
        sharing = running[0]
        more = 0
        ids: list[int] | None = None
        if conflict is None:
            report = await sharing.conflicts()
            scope = [c for c in report.conflicts if not element or c.element == element]
            ids = [c.id for c in _wizard_order(scope)]
            more = len(scope) - len(ids)
        planned = await attempt(sharing.plan(conflict, take, element or None, ids))
        if isinstance(planned, Response):
            return planned
        hub_now = {p.conflict.id: p.hub_value for p in planned}
        items = [(conflict_view(p.conflict, hub_now[p.conflict.id]), explain(p)) for p in planned]
        refused = next((p for p in planned if p.refused), None)
        return await render(
            request,
            "reconcile_confirm.html",
            session,
            services,
            "reconcile",
            take=take,
            take_label=TAKES[take],
            conflict=conflict,
            element=element,
            items=items,
            ids=ids or [],
            more=more,
            refused=refused,
            # A bulk plan stops at a refusal: the shown conflicts after it (the resolve
            # goes by id) not reached.
            unreached=sum(1 for i in ids or [] if i > refused.conflict.id) if refused else 0,
        )

    @router.post("/reconcile/resolve")
    async def resolve(
        request: Request,
        session: ActingDep,
        services: ServicesDep,
        take: Annotated[Take, Form()],
        conflict: RowIdForm = None,
        element: Name = "",
        ids: RowIdsForm = None,
    ) -> Response:
        """As `POST /api/v1/sharing/conflicts/{id}/resolve` (one) and
        `/sharing/conflicts/resolve` with the ids its confirmation showed (a bulk one:
        exactly those, the ones still open)."""
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "reconcile")
        if conflict is None and not ids:
            # Never "every open one": a bulk decision is on what its confirmation showed.
            return not_done(InvalidRequest("confirm a bulk decision from its preview"))
        try:
            await running[0].resolve(conflict, take, CONSOLE_USER, element or None, ids)
        except ProvsyncError as exc:
            return _partly_resolved(exc)
        return back_to("/ui/reconcile")

    # ---------------------------------------------------------------- distribution errors
    @router.get("/distribution-errors")
    async def distribution_page(
        request: Request, session: SessionDep, services: ServicesDep, element: ElementQuery = None
    ) -> Response:
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "distribution")
        data = await attempt(_distribution_data(running[0], element or None))
        if isinstance(data, Response):
            return data
        return await render(request, "distribution.html", session, services, "distribution", **data)

    @router.get("/fragments/distribution-errors")
    async def distribution_tables(
        request: Request, session: SessionDep, services: ServicesDep, element: ElementQuery = None
    ) -> Response:
        running = _running(services)
        if running is None:
            return await not_running_fragment(request, session, services)
        data = await attempt(_distribution_data(running[0], element or None))
        if isinstance(data, Response):
            return data
        return await fragment(request, "distribution_tables.html", session, services, **data)

    def chosen(distribution: int | None, ids: list[int] | None) -> list[int] | None:
        """One distribution, or the ids a list or confirmation showed; None: neither
        (refused: a bulk action takes what was shown, never "every failed one")."""
        if distribution is not None:
            return [distribution]
        return ids or None

    @router.post("/distribution-errors/retry")
    async def retry(
        request: Request,
        session: ActingDep,
        services: ServicesDep,
        distribution: RowIdForm = None,
        ids: RowIdsForm = None,
        element: Name = "",
        back: Name = "",
    ) -> Response:
        """As `POST /api/v1/distributions/{id}/retry` and `/distributions/retry` with the
        ids the list showed (those still failed)."""
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "distribution")
        selected = chosen(distribution, ids)
        if selected is None:
            return not_done(InvalidRequest("no failed distribution chosen"))
        done = await attempt(
            running[0].retry_distributions(selected, element or None, CONSOLE_USER)
        )
        if isinstance(done, Response):
            return done
        return back_to(_where("/ui/distribution-errors", back or None))

    @router.post("/distribution-errors/delete/confirm")
    async def delete_confirm(
        request: Request,
        session: ActingDep,
        services: ServicesDep,
        distribution: RowIdForm = None,
        ids: RowIdsForm = None,
        element: Name = "",
        back: Name = "",
    ) -> Response:
        """The confirmation a delete asks first: what goes (exactly the rows listed, and
        its form carries their ids), and the vendor's warning."""
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "distribution")
        sharing = running[0]
        selected = chosen(distribution, ids)
        if selected is None:
            return not_done(InvalidRequest("no failed distribution chosen"))
        found = await attempt(sharing.failed_distributions(selected, element or None, ERRORS_SHOWN))
        if isinstance(found, Response):
            return found
        rows = found[0]
        if not rows:
            return not_done(InvalidRequest("no such failed distribution (retried or deleted?)"))
        everything = await attempt(sharing.failed_distributions(None, element or None, 1))
        if isinstance(everything, Response):
            return everything
        return await render(
            request,
            "distribution_confirm.html",
            session,
            services,
            "distribution",
            rows=rows,
            distribution=distribution,
            element=element,
            back=back,
            total=everything[1],
            shown=shown,
            stamp=stamp,
            when=when,
        )

    @router.post("/distribution-errors/delete")
    async def delete(
        request: Request,
        session: ActingDep,
        services: ServicesDep,
        distribution: RowIdForm = None,
        ids: RowIdsForm = None,
        element: Name = "",
        back: Name = "",
    ) -> Response:
        """As `DELETE /api/v1/distributions/{id}` and `POST /distributions/delete` with
        the ids its confirmation listed (those still failed; a newer failure is not
        taken: it was not seen)."""
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "distribution")
        selected = chosen(distribution, ids)
        if selected is None:
            return not_done(InvalidRequest("no failed distribution chosen"))
        done = await attempt(
            running[0].delete_distributions(selected, element or None, CONSOLE_USER)
        )
        if isinstance(done, Response):
            return done
        return back_to(_where("/ui/distribution-errors", back or None))

    # ---------------------------------------------------------------- activation
    @router.get("/activation")
    async def activation_page(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "activation")
        data = await _activation_data(running[1])
        return await render(request, "activation.html", session, services, "activation", **data)

    @router.get("/fragments/activation")
    async def activation_tables(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        running = _running(services)
        if running is None:
            return await not_running_fragment(request, session, services)
        data = await _activation_data(running[1])
        return await fragment(request, "activation_tables.html", session, services, **data)

    @router.post("/activation/{name}")
    async def activate(
        request: Request,
        session: ActingDep,
        services: ServicesDep,
        name: Annotated[str, PathParam(max_length=64)],
    ) -> Response:
        """As `POST /api/v1/elements/{name}/activate`."""
        running = _running(services)
        if running is None:
            return await not_running(request, session, services, "activation")
        done = await attempt(running[0].activate(name))
        if isinstance(done, Response):
            return done
        return back_to("/ui/activation")

    return router
