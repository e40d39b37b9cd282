"""The elements, their sync actions and the jobs.

- ``/ui/elements``: every element with its sync and sharing state, and the form that
  adds one (its initialization job follows);
- ``/ui/elements/{name}``: its address, write-only credentials and a login test, its
  schedule, object counts and active alarms, and the sync actions (``#sync``): an
  initialization, an incremental, and a forced initialization that runs its dry run
  first and asks for a confirmation after showing what it would do; the element's last
  job with a live progress bar; its removal, confirmed on a page of its own;
- ``/ui/jobs`` and ``/ui/jobs/{id}``: the jobs, newest first, the running ones live.

Every action calls what the control API's route calls (agent.api.sync_routes) and
validates its form with that route's body model, so no rule is written twice.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError

from agent.alarms import queries
from agent.api.console.common import (
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
from agent.api.console.sessions import MAX_SESSIONS, Session
from agent.api.services import Services
from agent.api.statuses import status_of
from agent.api.sync_routes import (
    CredentialsBody,
    ElementBody,
    ScheduleBody,
    SyncBody,
    add_element,
    element_view,
    elements_view,
    job_json,
)
from agent.durations import format_duration, parse_duration
from agent.errors import ProvsyncError
from agent.store.access import StoreAccess
from agent.store.element_types import DEFAULT_ELEMENT_TYPE, ELEMENT_TYPES
from agent.store.elements import Credentials, Element
from agent.store.jobs import Job
from agent.sync.engine import SyncEngine
from agent.sync.init import SyncOptions

RUNNING = ("queued", "running")
"""Job states a live region keeps polling for (its progress bar moves)."""
JOBS_SHOWN = 200
ALARMS_SHOWN = 500
"""An element's page lists its newest active alarms, at most this many."""
DRY_RUN_FRESH = timedelta(minutes=10)
"""A forced initialization is confirmed only on a dry run this recent (its report is of
the element and the hub as they were then)."""
B = TypeVar("B", bound=BaseModel)


@dataclass(frozen=True)
class Note:
    """What the last action of a session did, shown once on the page it leads to (the
    credentials test's outcome, the job a sync was queued as)."""

    text: str
    href: str = ""
    label: str = ""
    place: str = "top"
    """Where the page shows it: "top", or "sync" beside the sync actions (the page a
    sync action leads to opens there, at ``#sync``)."""


class Notes:
    """One note per session, taken by the next page shown to it. In memory and bounded
    like the sessions: a note is a courtesy of the page, not a record (the events and
    the jobs are). Kept here, not in the redirect's URL, so a link cannot make the page
    say something the agent did not."""

    def __init__(self) -> None:
        self._notes: OrderedDict[str, Note] = OrderedDict()

    def put(self, session: Session, note: Note) -> None:
        self._notes[session.csrf] = note
        self._notes.move_to_end(session.csrf)
        while len(self._notes) > MAX_SESSIONS:
            self._notes.popitem(last=False)

    def take(self, session: Session) -> Note | None:
        return self._notes.pop(session.csrf, None)


class DryRuns:
    """The ids of the jobs the console queued as dry runs: while one is queued or running
    nothing in the store says it is one (its counts say so once it is done). In memory
    and bounded: after a restart such a job has been failed anyway."""

    def __init__(self, bound: int = 1000) -> None:
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._bound = bound

    def add(self, job_id: int) -> None:
        self._ids[job_id] = None
        self._ids.move_to_end(job_id)
        while len(self._ids) > self._bound:
            self._ids.popitem(last=False)

    def is_dry_run(self, job: Job) -> bool:
        """``job`` really is a forced initialization's dry run: done with the counts of
        one, or one the console queued as such and not done otherwise."""
        if job.kind != "force":
            return False
        if job.state == "done":
            return job.counts.get("dry_run") is True
        return job.id in self._ids


# ------------------------------------------------------------------ template helpers
def classes_text(objects: Mapping[str, int] | None) -> str:
    """An element's object counts per class in one line ("station 12, user 32")."""
    return ", ".join(f"{cls} {count}" for cls, count in sorted((objects or {}).items()))


def counts_text(counts: Mapping[str, Any]) -> str:
    """A job's counts in one line ("objects: station 10, user 20; replayed 0")."""
    parts: list[str] = []
    for key, value in counts.items():
        if key in ("progress", "total", "dry_run"):
            continue  # the progress bar and the "dry run" label show those
        if isinstance(value, Mapping):
            inner = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
            parts.append(f"{key.replace('_', ' ')}: {inner or 'none'}")
        elif isinstance(value, list):
            parts.append(f"{key.replace('_', ' ')}: {', '.join(map(str, value)) or 'none'}")
        else:
            parts.append(f"{key.replace('_', ' ')} {value}")
    return "; ".join(parts)


def schedule_text(interval: int, cron: str) -> str:
    """An element's schedule in words (a crontab wins over an interval, as
    agent.store.schedule reads it)."""
    if cron:
        return f"cron {cron} (UTC)"
    if interval > 0:
        return f"every {format_duration(interval)}"
    return "no schedule"


def interval_value(interval: int) -> str:
    """The interval as the schedule form shows it (and parses it back)."""
    return format_duration(interval) if interval > 0 else "0s"


HELPERS: dict[str, Callable[..., str]] = {
    "counts_text": counts_text,
    "classes_text": classes_text,
    "schedule_text": schedule_text,
    "interval_value": interval_value,
    "when": when,
}


# ------------------------------------------------------------------ form input
class BadInput(Exception):
    """A form value the API's body model refuses (answered 422 with its message)."""


def _validated(model: type[B], data: dict[str, Any]) -> B:
    """``data`` as the API's body ``model`` takes it; its refusals name the fields only
    (never the values: one of them may be a password)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'form'}: {error['msg']}"
            for error in exc.errors()
        )
        raise BadInput(problems) from None


def _seconds(field: str, value: str) -> int | None:
    """An interval field: "" is not given; "24h", "30m", "0s" or a number of seconds,
    whole seconds only (the schedule counts in seconds: "500ms" is not "0s", no
    schedule)."""
    value = value.strip()
    if not value:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise BadInput(f"{field}: {exc}") from None
    whole = round(seconds)
    if not math.isclose(seconds, whole, rel_tol=0, abs_tol=1e-6):
        raise BadInput(f"{field}: must be a whole number of seconds, such as 30s, 5m or 24h")
    return whole


def _uses(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def bad_input_answer(exc: BadInput) -> HTMLResponse:
    return message_page(422, f"Not done, the form is not valid: {exc}")


def not_shown(exc: ProvsyncError) -> HTMLResponse:
    """A page (GET) the service cannot show: "Not found" for a missing element (404),
    else the service's refusal."""
    if status_of(exc) == 404:
        return message_page(404, f"Not found: {exc}.")
    return not_done(exc)


# ------------------------------------------------------------------ the pages
def element_router() -> APIRouter:
    router = APIRouter()
    notes = Notes()
    dry_runs = DryRuns()

    async def page(
        request: Request,
        template: str,
        session: Session,
        services: Services,
        page_id: str,
        **context: Any,
    ) -> Response:
        return await render(
            request,
            template,
            session,
            services,
            page_id,
            note=notes.take(session),
            **HELPERS,
            **context,
        )

    async def part(
        request: Request, template: str, session: Session, services: Services, **context: Any
    ) -> Response:
        return await fragment(request, template, session, services, **HELPERS, **context)

    async def off(request: Request, session: Session, services: Services, page_id: str) -> Response:
        # Synchronization can be off while the rest of the agent runs: the pages say so
        # in their frame rather than answering the API's JSON error.
        answer = await render(request, "elements_off.html", session, services, page_id)
        answer.status_code = 503
        return answer

    # -------------------------------------------------------------- elements
    @router.get("/elements")
    async def elements(request: Request, session: SessionDep, services: ServicesDep) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "elements")
        return await page(
            request,
            "elements.html",
            session,
            services,
            "elements",
            elements=await elements_view(parts[1], counts=True),
            types=ELEMENT_TYPES,
            default_type=DEFAULT_ELEMENT_TYPE,
        )

    @router.get("/fragments/elements")
    async def elements_table(
        request: Request, session: SessionDep, services: ServicesDep
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "elements")
        return await part(
            request,
            "elements_table.html",
            session,
            services,
            elements=await elements_view(parts[1], counts=True),
        )

    @router.post("/elements")
    async def add(
        session: ActingDep,
        services: ServicesDep,
        name: Annotated[str, Form()] = "",
        element_type: Annotated[str, Form(alias="type")] = DEFAULT_ELEMENT_TYPE,
        url: Annotated[str, Form()] = "",
        connector: Annotated[str, Form()] = "http",
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        interval: Annotated[str, Form()] = "",
        cron: Annotated[str, Form()] = "",
        uses: Annotated[str, Form()] = "",
    ) -> Response:
        """Add an element as ``POST /api/v1/elements`` does; its initialization follows."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        try:
            body = _validated(
                ElementBody,
                {
                    "name": name.strip(),
                    "type": element_type,
                    "url": url.strip(),
                    "connector": connector.strip() or "http",
                    "username": username.strip() or None,
                    "password": password or None,
                    "interval": _seconds("interval", interval),
                    "cron": cron.strip(),
                    "uses": _uses(uses),
                },
            )
        except BadInput as exc:
            return bad_input_answer(exc)
        added = await attempt(add_element(parts[0], body))
        if isinstance(added, Response):
            return added
        element, job_id = added
        notes.put(
            session,
            Note(
                f"Added {element.name}; its initialization sync is queued as job {job_id}.",
                f"/ui/jobs/{job_id}",
                f"Job {job_id}",
                "sync",
            ),
        )
        return back_to(f"{_page_of(element.name)}#sync")

    @router.get("/elements/{name}")
    async def element(
        request: Request,
        session: SessionDep,
        services: ServicesDep,
        name: str,
        dry_run: str = "",
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "elements")
        try:
            shown = await element_view(parts[1], name)
            sync = await _sync_state(
                parts[1], name, _row_id(dry_run), dry_runs, parts[0].clock.now()
            )
        except ProvsyncError as exc:
            return not_shown(exc)
        return await page(
            request,
            "element.html",
            session,
            services,
            "elements",
            element=shown,
            **await _alarms(parts[1], name),
            **sync,
        )

    @router.get("/fragments/elements/{name}/sync")
    async def sync_part(
        request: Request,
        session: SessionDep,
        services: ServicesDep,
        name: str,
        dry_run: str = "",
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "elements")
        try:
            sync = await _sync_state(
                parts[1], name, _row_id(dry_run), dry_runs, parts[0].clock.now()
            )
        except ProvsyncError as exc:
            return not_shown(exc)
        return await part(request, "element_sync.html", session, services, **sync)

    @router.get("/fragments/elements/{name}/alarms")
    async def alarms_part(
        request: Request, session: SessionDep, services: ServicesDep, name: str
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "elements")
        return await part(
            request, "element_alarms.html", session, services, **await _alarms(parts[1], name)
        )

    @router.post("/elements/{name}/address")
    async def address(
        session: ActingDep, services: ServicesDep, name: str, url: Annotated[str, Form()] = ""
    ) -> Response:
        """Move the element, as ``PATCH /api/v1/elements/{name}`` with a url does."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        try:
            body = _validated(ScheduleBody, {"url": url.strip()})
        except BadInput as exc:
            return bad_input_answer(exc)
        done = await attempt(parts[0].elements.update(name, url=body.url))
        if isinstance(done, Response):
            return done
        notes.put(session, Note(f"{name} is now at {done.address}."))
        return back_to(_page_of(name))

    @router.post("/elements/{name}/schedule")
    async def schedule(
        session: ActingDep,
        services: ServicesDep,
        name: str,
        interval: Annotated[str, Form()] = "",
        cron: Annotated[str, Form()] = "",
    ) -> Response:
        """Change the recurring incremental's schedule, as the API's PATCH does (the form
        sends both fields: an empty cron clears it)."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        try:
            body = _validated(
                ScheduleBody, {"interval": _seconds("interval", interval), "cron": cron.strip()}
            )
        except BadInput as exc:
            return bad_input_answer(exc)
        done = await attempt(parts[0].elements.update(name, interval=body.interval, cron=body.cron))
        if isinstance(done, Response):
            return done
        notes.put(session, Note(f"{name}: {schedule_text(done.interval, done.cron)}."))
        return back_to(_page_of(name))

    @router.post("/elements/{name}/credentials")
    async def credentials(
        session: ActingDep,
        services: ServicesDep,
        name: str,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
    ) -> Response:
        """Save and test new credentials, as ``PUT /api/v1/elements/{name}/credentials``
        does. The password goes to the store only: no page or value shows it again."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        try:
            body = _validated(CredentialsBody, {"username": username.strip(), "password": password})
        except BadInput as exc:
            return bad_input_answer(exc)
        tested = await attempt(
            parts[0].elements.set_credentials(name, Credentials(body.username, body.password))
        )
        if isinstance(tested, Response):
            return tested
        notes.put(session, Note(f"Credentials of {name} set; {tested or 'nothing tested them'}."))
        return back_to(_page_of(name))

    @router.post("/elements/{name}/test")
    async def test_login(session: ActingDep, services: ServicesDep, name: str) -> Response:
        """A login with the saved credentials (``POST /api/v1/elements/{name}/test``)."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        tested = await attempt(parts[0].elements.test_login(name))
        if isinstance(tested, Response):
            return tested
        notes.put(session, Note(f"Login test: {tested or 'nothing tests the login'}."))
        return back_to(_page_of(name))

    @router.post("/elements/{name}/sync")
    async def sync_now(
        session: ActingDep,
        services: ServicesDep,
        name: str,
        kind: Annotated[str, Form()] = "",
    ) -> Response:
        """Queue an initialization or an incremental (``POST .../sync``); a forced one
        goes through its dry run (the two routes below)."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        try:
            body = _validated(SyncBody, {"kind": kind})
        except BadInput as exc:
            return bad_input_answer(exc)
        if body.kind == "force":
            return message_page(422, "Not done: a forced initialization starts with its dry run.")
        job_id = await attempt(parts[0].request(name, body.kind, "manual"))
        if isinstance(job_id, Response):
            return job_id
        notes.put(
            session,
            Note(
                f"{body.kind} sync of {name} queued as job {job_id}.",
                f"/ui/jobs/{job_id}",
                place="sync",
            ),
        )
        return back_to(f"{_page_of(name)}#sync")

    @router.post("/elements/{name}/force/dry-run")
    async def force_dry_run(session: ActingDep, services: ServicesDep, name: str) -> Response:
        """Step one of a forced initialization: its dry run (what it would delete)."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        job_id = await attempt(parts[0].request(name, "force", "manual", SyncOptions(dry_run=True)))
        if isinstance(job_id, Response):
            return job_id
        dry_runs.add(job_id)
        return back_to(f"{_page_of(name)}?dry_run={job_id}#sync")

    @router.post("/elements/{name}/force/confirm")
    async def force_confirm(
        session: ActingDep,
        services: ServicesDep,
        name: str,
        dry_run: Annotated[str, Form()] = "",
    ) -> Response:
        """Step two: the forced initialization itself, once the operator has seen its dry
        run's report. It may delete the hub's copy (``yes``) only if that report said it
        would: otherwise the engine refuses any deletion (the element emptied since)."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        try:
            element = await asyncio.to_thread(parts[1].elements.get, name)
        except ProvsyncError as exc:
            return not_done(exc)
        seen = await _confirmable(parts[1], element, _row_id(dry_run), parts[0].clock.now())
        if seen is None:
            # The console's own two steps (the API leaves them to its caller): a
            # confirmation is of the report the operator was shown, and that report
            # still describes the element.
            return message_page(
                409,
                "Not done: run the dry run again, then confirm its report (only a dry run"
                " that is the element's last job, of the last "
                f"{format_duration(DRY_RUN_FRESH.total_seconds())}, can be confirmed).",
            )
        # Never more than the report said: the engine refuses a run that would delete
        # more (the hub's copy grew since), and without `yes` any deletion at all.
        confirmed = _would_delete(seen.counts)
        options = SyncOptions(yes=confirmed > 0, max_delete=confirmed)
        job_id = await attempt(parts[0].request(name, "force", "manual", options))
        if isinstance(job_id, Response):
            return job_id
        notes.put(
            session,
            Note(
                f"Forced initialization of {name} queued as job {job_id}.",
                f"/ui/jobs/{job_id}",
                place="sync",
            ),
        )
        return back_to(f"{_page_of(name)}#sync")

    @router.get("/elements/{name}/remove")
    async def remove_page(
        request: Request, session: SessionDep, services: ServicesDep, name: str
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "elements")
        try:
            shown = await element_view(parts[1], name)
        except ProvsyncError as exc:
            return not_shown(exc)
        return await page(
            request, "element_remove.html", session, services, "elements", element=shown
        )

    @router.post("/elements/{name}/remove")
    async def remove(session: ActingDep, services: ServicesDep, name: str) -> Response:
        """Remove the element and the hub's copy (``DELETE /api/v1/elements/{name}``)."""
        parts = _parts(services)
        if parts is None:
            return _off_answer()
        done = await attempt(parts[0].elements.remove(name))
        if isinstance(done, Response):
            return done
        notes.put(session, Note(f"Removed {name} and the hub's copy of its data."))
        return back_to("/ui/elements")

    # -------------------------------------------------------------- jobs
    @router.get("/jobs")
    async def jobs(
        request: Request,
        session: SessionDep,
        services: ServicesDep,
        element: str = "",
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "jobs")
        found = await asyncio.to_thread(parts[1].elements.all)
        return await page(
            request,
            "jobs.html",
            session,
            services,
            "jobs",
            jobs=await _jobs(parts[1], element),
            element=element,
            element_names=sorted(e.name for e in found),
        )

    @router.get("/fragments/jobs")
    async def jobs_table(
        request: Request,
        session: SessionDep,
        services: ServicesDep,
        element: str = "",
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "jobs")
        return await part(
            request, "jobs_table.html", session, services, jobs=await _jobs(parts[1], element)
        )

    @router.get("/jobs/{job_id}")
    async def job(
        request: Request, session: SessionDep, services: ServicesDep, job_id: str
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "jobs")
        found = await _job(parts[1], job_id)
        if found is None:
            return message_page(404, f"Not found: no job with id {job_id}.")
        return await page(request, "job.html", session, services, "jobs", job=job_json(found))

    @router.get("/fragments/jobs/{job_id}")
    async def job_part(
        request: Request, session: SessionDep, services: ServicesDep, job_id: str
    ) -> Response:
        parts = _parts(services)
        if parts is None:
            return await off(request, session, services, "jobs")
        found = await _job(parts[1], job_id)
        if found is None:
            return message_page(404, f"Not found: no job with id {job_id}.")
        return await part(request, "job_detail.html", session, services, job=job_json(found))

    return router


# ------------------------------------------------------------------ reading
def _page_of(name: str) -> str:
    """The element's page: its name as one path segment (a redirect's Location)."""
    return f"/ui/elements/{quote(name, safe='')}"


def _row_id(value: str) -> int | None:
    """A job id from a URL or a form ("" or not an id: None). Parsed here, not by
    FastAPI, whose refusal would be the API's JSON instead of a page."""
    value = value.strip()
    if not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 1 <= number < 2**63 else None


async def _job(store: StoreAccess, job_id: str) -> Job | None:
    number = _row_id(job_id)
    return None if number is None else await asyncio.to_thread(store.jobs.get, number)


def _parts(services: Services) -> tuple[SyncEngine, StoreAccess] | None:
    """The sync engine and the store, or None when synchronization is not running."""
    if services.sync is None or services.store is None:
        return None
    return services.sync, services.store


def _off_answer() -> HTMLResponse:
    return message_page(503, "Not done: synchronization is not running in this agent.")


async def _alarms(store: StoreAccess, name: str) -> dict[str, Any]:
    """The element's newest active alarms (oldest of them first) and how many it has
    when that is more than the page lists."""
    alarms = await asyncio.to_thread(
        queries.list_alarms, store.engine, resource=name, limit=ALARMS_SHOWN, newest=True
    )
    total = len(alarms)
    if total >= ALARMS_SHOWN:
        total = await asyncio.to_thread(queries.count_alarms, store.engine, resource=name)
    return {"alarms": alarms, "alarms_total": total}


async def _jobs(store: StoreAccess, element: str) -> list[dict[str, Any]]:
    found = await asyncio.to_thread(store.jobs.recent, element or None, JOBS_SHOWN)
    return [job_json(j) for j in reversed(found)]  # the store's order is oldest first


def _is_done_dry_run(job: Job) -> bool:
    """A forced initialization's dry run that ended with its report (the engine's
    counts: ``dry_run`` true, ``would_delete``, ``element_objects``, ``hub_objects``)."""
    return job.kind == "force" and job.state == "done" and job.counts.get("dry_run") is True


def _would_delete(counts: Mapping[str, Any]) -> int:
    """How many hub objects a dry run's report says the forced run would delete."""
    value = counts.get("would_delete")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def _confirmable(
    store: StoreAccess, element: Element, job_id: int | None, now: datetime
) -> Job | None:
    """The dry run ``job_id`` if a forced initialization may be confirmed on its report:
    a done dry run of ``element``, its newest job (nothing ran or was queued since), at
    most :data:`DRY_RUN_FRESH` old. None otherwise."""
    if job_id is None:
        return None
    seen = await asyncio.to_thread(store.jobs.get, job_id)
    if seen is None or seen.element_id != element.id or not _is_done_dry_run(seen):
        return None
    newest = await asyncio.to_thread(store.jobs.recent, element.name, 1)
    if not newest or newest[-1].id != seen.id:
        return None
    made = seen.ended_at or seen.created_at
    if now - made > DRY_RUN_FRESH:
        return None
    return seen


async def _sync_state(
    store: StoreAccess, name: str, dry_run: int | None, dry_runs: DryRuns, now: datetime
) -> dict[str, Any]:
    """What the sync actions show: the element's last job and, in a forced
    initialization's first step, its dry run (``dry_run``: that job's id) and whether
    its report may still be confirmed.

    Raises:
        ElementNotFound: no such element.
    """
    element = await asyncio.to_thread(store.elements.get, name)
    recent = await asyncio.to_thread(store.jobs.recent, name, 1)
    last = job_json(recent[-1]) if recent else None
    report = None
    if dry_run is not None:
        found = await asyncio.to_thread(store.jobs.get, dry_run)
        # Only this element's dry runs: another id in the link shows nothing.
        if found is not None and found.element_id == element.id and dry_runs.is_dry_run(found):
            report = found
    return {
        "name": name,
        "last_job": last,
        "dry_run": job_json(report) if report is not None else None,
        "dry_run_done": report is not None and _is_done_dry_run(report),
        "dry_run_current": (
            report is not None and await _confirmable(store, element, report.id, now) is not None
        ),
        "fresh_for": format_duration(DRY_RUN_FRESH.total_seconds()),
        "running": RUNNING,
    }
