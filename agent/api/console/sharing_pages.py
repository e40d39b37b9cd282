"""Sharing: the group and each element's state (start sharing), the Sync and Reconcile
wizard, the distribution errors (retry, delete) and the activation of messaging
elements. Every action is the sharing service's, as the control API's routes call it;
what a page adds is only what it shows first (the values side by side, what a decision
will do, a confirmation before a delete)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from agent.alarms import queries
from agent.api.console.banner import banners_of
from agent.api.console.common import (
    CONSOLE_USER,
    ActingDep,
    ServicesDep,
    SessionDep,
    attempt,
    back_to,
    fragment,
    not_done,
    render,
)
from agent.api.console.sessions import Session
from agent.api.services import Services
from agent.errors import InvalidRequest, ProvsyncError, SharingError
from agent.sharing.activation import ACTIVATION_REQUIRED
from agent.sharing.group import NOT_SHARING
from agent.sharing.service import SharingService
from agent.store.conflicts import Conflict
from agent.store.distributions import Distribution
from agent.store.element_types import MESSAGING
from agent.store.rows import Data

ERRORS_SHOWN = 500
"""The failed distributions a page lists (a page costs a bounded read; bulk actions
still take every one)."""
CATEGORIES = (
    ("unresolved", "Unresolved: both sides changed the same data differently"),
    ("review", "For review: the element's record matches a different hub record"),
    ("automatic", "Automatic: merged both ways, open for a look"),
)
"""The conflict categories in the wizard's order, with what each means."""
CHANGED = InvalidRequest(
    "what was shown changed meanwhile (a new conflict or failure): look at it and decide again"
)
TAKES = {"hub": "take the hub's value", "element": "take the element's value", "skip": "skip"}

Take = Literal["hub", "element", "skip"]
Name = Annotated[str, Form(max_length=64)]
RowIdForm = Annotated[int | None, Form(ge=1, le=2**63 - 1)]
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


ABSENT = "(absent)"


def shown(value: object) -> str:
    """A field's value as text: strings as they are, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


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


def conflict_view(row: Conflict) -> ConflictView:
    return ConflictView(
        row,
        _fields(row.hub_data, row.element_data, row.base_data),
        "" if row.hub_data is not None else f"the hub has no {row.cls} {row.hub_key}",
        "" if row.element_data is not None else f"{row.element} has no {row.cls} {row.key}",
    )


def _changes(before: Data | None, after: Data | None) -> list[str]:
    """Each field that changes from ``before`` to ``after``, as "name from A to B"."""
    return [
        f"{f.name} from {f.hub or ABSENT} to {f.element or ABSENT}"
        for f in _fields(before, after, None)
        if f.differs
    ]


def explain(row: Conflict, take: str, others: list[str]) -> str:
    """What resolving ``row`` with ``take`` will do, in words (the service decides; this
    describes reconcile's documented outcome: the hub's value goes to the element, the
    element's is written to the hub and shared with the other sharing elements)."""
    if take == "skip":
        return (
            f"Skipping closes the conflict on {row.cls} {row.key} of {row.element}: nothing "
            "changes on the hub or on the element, and their values stay as they are."
        )
    if take == "hub":
        source, target, where = row.hub_data, row.element_data, row.element
        key, other_key = row.hub_key, row.key
        lead = "Taking the hub's value"
        sent = f"it is sent to {row.element}"
    else:
        source, target, where = row.element_data, row.hub_data, "the hub"
        key, other_key = row.key, row.hub_key
        lead = "Taking the element's value"
        shared = ", ".join(others) if others else "no other element (none shares now)"
        sent = f"it is written to the hub and sent to {shared}"
    if key != other_key:
        verb = f"deletes {row.cls} {other_key} on {where} and "
        verb += f"creates {row.cls} {key} there" if source is not None else "leaves no record there"
        return f"{lead} {verb}; {sent}."
    if source is None:
        return f"{lead} deletes {row.cls} {key} on {where}; {sent}."
    if target is None:
        return f"{lead} creates {row.cls} {key} on {where}; {sent}."
    changes = _changes(target, source)
    detail = "; ".join(changes) if changes else "no field changes"
    return f"{lead} sets {row.cls} {key} on {where}: {detail}; {sent}."


def _sharing_others(status: dict[str, Any], element: str) -> list[str]:
    return [
        e["name"]
        for e in status["elements"]
        if e["sharing"] != NOT_SHARING and e["name"] != element
    ]


# ------------------------------------------------------------------ the data of each page
async def _sharing_data(services: Services, sharing: SharingService) -> dict[str, Any]:
    """The group from the service; every element, the ones out of the group too (they
    can be started)."""
    status = await sharing.status()
    assert services.store is not None, "sharing runs on the store"
    listed = {e["name"]: e for e in status["elements"]}
    elements = []
    for element in await asyncio.to_thread(services.store.elements.all):
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
    return {"status": status, "elements": elements}


async def _reconcile_data(sharing: SharingService) -> dict[str, Any]:
    report = await sharing.conflicts()
    groups = [
        (category, label, [conflict_view(c) for c in report.conflicts if c.category == category])
        for category, label in CATEGORIES
    ]
    return {
        "running": report.running,
        "summary": report.summary,
        "total": len(report.conflicts),
        "groups": [g for g in groups if g[2]],
        "by_element": sorted({c.element for c in report.conflicts}),
    }


async def _errors(
    services: Services, element: str | None, ids: list[int] | None = None
) -> list[Distribution]:
    """Failed distributions (of ``element``; only ``ids`` when given), as the API lists
    them."""
    store = services.store
    assert store is not None, "sharing runs on the store"
    element_id = None
    if element is not None:
        element_id = (await asyncio.to_thread(store.elements.get, element)).id
    rows = await asyncio.to_thread(
        store.distribution_admin.listed,
        element_id=element_id,
        states=("error",),
        limit=ERRORS_SHOWN,
    )
    return [r for r in rows if ids is None or r.id in ids]


async def _distribution_data(services: Services, element: str | None) -> dict[str, Any]:
    rows = await _errors(services, element)
    return {
        "rows": rows,
        "element": element,
        "more": len(rows) >= ERRORS_SHOWN,
        "by_element": sorted({r.element for r in rows}),
        "shown": shown,
    }


async def _activation_data(services: Services) -> dict[str, Any]:
    """Messaging elements, with the active activation alarms (what changed, per network
    element they are programmed with) that say why each waits."""
    store = services.store
    assert store is not None, "sharing runs on the store"
    engine = store.engine
    alarms = await asyncio.to_thread(
        queries.list_alarms, engine, type_id=ACTIVATION_REQUIRED, limit=1000
    )
    elements = []
    for element in await asyncio.to_thread(store.elements.all):
        if element.type != MESSAGING:
            continue
        waiting = [a for a in alarms if a["resource"] == element.name]
        elements.append({"name": element.name, "uses": element.uses, "alarms": waiting})
    waiting_first = sorted(elements, key=lambda e: (not e["alarms"], e["name"]))
    return {"elements": waiting_first, "waiting": sum(1 for e in elements if e["alarms"])}


def _where(path: str, element: str | None) -> str:
    return f"{path}?{urlencode({'element': element})}" if element else path


# ------------------------------------------------------------------ the routes
def sharing_router() -> APIRouter:
    router = APIRouter()

    async def off(request: Request, session: Session, services: Services, page: str) -> Response:
        return await render(request, "sharing_off.html", session, services, page)

    # ---------------------------------------------------------------- the group
    @router.get("/sharing")
    async def sharing_page(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        if services.sharing is None:
            return await off(request, session, services, "sharing")
        data = await _sharing_data(services, services.sharing)
        return await render(request, "sharing.html", session, services, "sharing", **data)

    @router.get("/fragments/sharing")
    async def sharing_tables(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        if services.sharing is None:
            return await fragment(request, "sharing_off_fragment.html", session, services)
        data = await _sharing_data(services, services.sharing)
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
        sharing = services.sharing
        if sharing is None:
            return await off(request, session, services, "sharing")
        try:
            await sharing.start_sharing(name, None)
        except SharingError as exc:
            # Refused: the page again, its red banner saying why (the frame's banner list
            # shows it too when the refusal was recorded; then once is enough).
            banners = await banners_of(services)
            said = str(exc).rsplit(": ", 1)[-1]  # the why, without its heading
            refused = "" if any(said in b.text for b in banners) else f"Not done: {exc}"
            data = await _sharing_data(services, sharing)
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
        if services.sharing is None:
            return await off(request, session, services, "reconcile")
        data = await _reconcile_data(services.sharing)
        return await render(request, "reconcile.html", session, services, "reconcile", **data)

    @router.get("/fragments/reconcile")
    async def reconcile_tables(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        if services.sharing is None:
            return await fragment(request, "sharing_off_fragment.html", session, services)
        data = await _reconcile_data(services.sharing)
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
        """What a decision will do, before it is done: its confirmation step."""
        sharing = services.sharing
        if sharing is None:
            return await off(request, session, services, "reconcile")
        report = await sharing.conflicts()
        rows = [
            c
            for c in report.conflicts
            if (conflict is None or c.id == conflict) and (not element or c.element == element)
        ]
        if not rows:
            return not_done(InvalidRequest("no such open conflict (resolved meanwhile?)"))
        status = await sharing.status()
        items = [
            (conflict_view(c), explain(c, take, _sharing_others(status, c.element))) for c in rows
        ]
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
        )

    @router.post("/reconcile/resolve")
    async def resolve(
        session: ActingDep,
        services: ServicesDep,
        take: Annotated[Take, Form()],
        conflict: RowIdForm = None,
        element: Name = "",
        expected: Annotated[int | None, Form(ge=0)] = None,
    ) -> Response:
        """As `POST /api/v1/sharing/conflicts/{id}/resolve` (one) and
        `/sharing/conflicts/resolve` (every open one, or an element's)."""
        sharing = services.sharing
        if sharing is None:
            return not_done(ProvsyncError("sharing is not running"))
        if conflict is None and expected is not None:
            # A bulk decision takes what is open when it runs: not more than was shown.
            report = await sharing.conflicts()
            now_open = [c for c in report.conflicts if not element or c.element == element]
            if len(now_open) != expected:
                return not_done(CHANGED)
        done = await attempt(sharing.resolve(conflict, take, CONSOLE_USER, element or None))
        if isinstance(done, Response):
            return done
        return back_to("/ui/reconcile")

    # ---------------------------------------------------------------- distribution errors
    @router.get("/distribution-errors")
    async def distribution_page(
        request: Request, session: SessionDep, services: ServicesDep, element: ElementQuery = None
    ) -> Response:
        if services.sharing is None:
            return await off(request, session, services, "distribution")
        data = await attempt(_distribution_data(services, element or None))
        if isinstance(data, Response):
            return data
        return await render(request, "distribution.html", session, services, "distribution", **data)

    @router.get("/fragments/distribution-errors")
    async def distribution_tables(
        request: Request, session: SessionDep, services: ServicesDep, element: ElementQuery = None
    ) -> Response:
        if services.sharing is None:
            return await fragment(request, "sharing_off_fragment.html", session, services)
        data = await attempt(_distribution_data(services, element or None))
        if isinstance(data, Response):
            return data
        return await fragment(request, "distribution_tables.html", session, services, **data)

    @router.post("/distribution-errors/retry")
    async def retry(
        session: ActingDep,
        services: ServicesDep,
        distribution: RowIdForm = None,
        element: Name = "",
        back: Name = "",
    ) -> Response:
        """As `POST /api/v1/distributions/{id}/retry` and `/distributions/retry`."""
        sharing = services.sharing
        if sharing is None:
            return not_done(ProvsyncError("sharing is not running"))
        ids = [distribution] if distribution is not None else None
        done = await attempt(sharing.retry_distributions(ids, element or None, CONSOLE_USER))
        if isinstance(done, Response):
            return done
        return back_to(_where("/ui/distribution-errors", back or None))

    @router.post("/distribution-errors/delete/confirm")
    async def delete_confirm(
        request: Request,
        session: ActingDep,
        services: ServicesDep,
        distribution: RowIdForm = None,
        element: Name = "",
        back: Name = "",
    ) -> Response:
        """The confirmation a delete asks first: what goes, and the vendor's warning."""
        if services.sharing is None:
            return await off(request, session, services, "distribution")
        ids = [distribution] if distribution is not None else None
        rows = await attempt(_errors(services, element or None, ids))
        if isinstance(rows, Response):
            return rows
        if not rows:
            return not_done(InvalidRequest("no such failed distribution (retried or deleted?)"))
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
            more=len(rows) >= ERRORS_SHOWN,
            shown=shown,
        )

    @router.post("/distribution-errors/delete")
    async def delete(
        session: ActingDep,
        services: ServicesDep,
        distribution: RowIdForm = None,
        element: Name = "",
        back: Name = "",
        expected: Annotated[int | None, Form(ge=0)] = None,
    ) -> Response:
        """As `DELETE /api/v1/distributions/{id}` and `POST /distributions/delete`."""
        sharing = services.sharing
        if sharing is None:
            return not_done(ProvsyncError("sharing is not running"))
        ids = [distribution] if distribution is not None else None
        if ids is None and expected is not None:
            # Deletes only what its confirmation listed: a newer failure is seen first.
            rows = await attempt(_errors(services, element or None))
            if isinstance(rows, Response):
                return rows
            if len(rows) != expected:
                return not_done(CHANGED)
        done = await attempt(sharing.delete_distributions(ids, element or None, CONSOLE_USER))
        if isinstance(done, Response):
            return done
        return back_to(_where("/ui/distribution-errors", back or None))

    # ---------------------------------------------------------------- activation
    @router.get("/activation")
    async def activation_page(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        if services.sharing is None:
            return await off(request, session, services, "activation")
        data = await _activation_data(services)
        return await render(request, "activation.html", session, services, "activation", **data)

    @router.get("/fragments/activation")
    async def activation_tables(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        if services.sharing is None:
            return await fragment(request, "sharing_off_fragment.html", session, services)
        data = await _activation_data(services)
        return await fragment(request, "activation_tables.html", session, services, **data)

    @router.post("/activation/{name}")
    async def activate(
        session: ActingDep,
        services: ServicesDep,
        name: Annotated[str, PathParam(max_length=64)],
    ) -> Response:
        """As `POST /api/v1/elements/{name}/activate`."""
        sharing = services.sharing
        if sharing is None:
            return not_done(ProvsyncError("sharing is not running"))
        done = await attempt(sharing.activate(name))
        if isinstance(done, Response):
            return done
        return back_to("/ui/activation")

    return router
