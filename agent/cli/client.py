"""A typed client of the control API: one method per operation its users call.

The CLI, the tests and the benches use it; it imports neither Typer nor rich, so they can
import it alone. Every method raises:

- ``AgentUnavailable`` when the agent cannot be reached;
- ``ApiError`` when it refuses (HTTP 4xx or 5xx), with its one-line reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeAlias, cast
from urllib.parse import quote

import httpx

from agent.cli.api_types import (
    Activation,
    AgentStatus,
    Alarm,
    AlarmChange,
    AlarmDetail,
    AlarmType,
    Conflicts,
    ConsoleLink,
    CredentialsSet,
    Deleted,
    Device,
    Distribution,
    Element,
    ElementDetail,
    Event,
    HubChanges,
    Job,
    JsonObject,
    JsonValue,
    LoginTested,
    NewElement,
    Plan,
    Queued,
    Resolved,
    Retried,
    SharedObject,
    SharingStarted,
    SharingStatus,
    TestNotification,
)
from agent.errors import AgentUnavailable, ApiError
from agent.http_tls import client_context

QueryValue: TypeAlias = str | int | list[str] | None
JOB_ENDED = frozenset({"done", "failed"})
# Objects per GET /objects/{cls} while listing a whole class: a few MB per answer.
OBJECTS_PAGE = 5000
# Alarms per GET /alarms while listing them all (the route's default page).
ALARMS_PAGE = 1000


def _segment(value: str) -> str:
    """A class or key as one path segment ("/" in a key included)."""
    return quote(value, safe="")


class Client:
    """The control API at ``base_url`` (``http://host:port``), with its bearer token."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, verify=client_context()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- transport
    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, QueryValue] | None = None,
    ) -> JsonValue:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, f"/api/v1{path}", json=body, params=clean)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise AgentUnavailable(
                f"the provsync agent is not running at {self.base_url} ({reason})"
            ) from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.text
            except ValueError:
                message = response.text or response.reason_phrase
            raise ApiError(response.status_code, f"{message} (HTTP {response.status_code})")
        answer: JsonValue = response.json()
        return answer

    def _get(self, path: str, **params: QueryValue) -> JsonValue:
        return self._request("GET", path, params=params)

    def _post(self, path: str, body: Mapping[str, object] | None = None) -> JsonValue:
        return self._request("POST", path, body=body)

    # ----------------------------------------------------------------------- agent
    def console_link(self, read_only: bool = False) -> ConsoleLink:
        return cast(ConsoleLink, self._post("/console/link", {"read_only": read_only}))

    def status(self) -> AgentStatus:
        return cast(AgentStatus, self._get("/status"))

    def catalog(self) -> list[AlarmType]:
        return cast(list[AlarmType], self._get("/catalog"))

    def shutdown(self) -> None:
        self._post("/shutdown")

    # ----------------------------------------------------------------------- alarms, events
    def alarms(
        self,
        state: str = "active",
        severity: list[str] | None = None,
        type_id: str | None = None,
        resource: str | None = None,
        limit: int | None = 1000,
    ) -> list[Alarm]:
        """The alarms by id, at most ``limit`` (None: all), read a page at a time."""
        found: list[Alarm] = []
        after = 0
        while limit is None or len(found) < limit:
            size = ALARMS_PAGE if limit is None else min(ALARMS_PAGE, limit - len(found))
            page = cast(
                list[Alarm],
                self._get(
                    "/alarms",
                    state=state,
                    severity=severity,
                    type=type_id,
                    resource=resource,
                    limit=size,
                    after=after or None,
                ),
            )
            found.extend(page)
            if len(page) < size:
                break
            after = page[-1]["id"]
        return found

    def alarm(self, alarm_id: int) -> AlarmDetail:
        return cast(AlarmDetail, self._get(f"/alarms/{alarm_id}"))

    def raise_alarm(
        self,
        type_id: str,
        resource: str,
        qualifier: str = "",
        severity: str | None = None,
        text: str = "",
        by: str = "",
    ) -> AlarmChange:
        body = {
            "type": type_id,
            "resource": resource,
            "qualifier": qualifier,
            "severity": severity,
            "text": text,
            "by": by,
        }
        return cast(AlarmChange, self._post("/alarms", body))

    def _operate(self, alarm_id: int, action: str, note: str | None, by: str) -> AlarmChange:
        body = {"note": note, "by": by}
        return cast(AlarmChange, self._post(f"/alarms/{alarm_id}/{action}", body))

    def clear(self, alarm_id: int, note: str | None = None, by: str = "") -> AlarmChange:
        return self._operate(alarm_id, "clear", note, by)

    def clear_by_key(
        self,
        type_id: str,
        resource: str,
        qualifier: str = "",
        note: str | None = None,
        by: str = "",
    ) -> AlarmChange:
        body = {"type": type_id, "resource": resource, "qualifier": qualifier}
        return cast(AlarmChange, self._post("/alarms/clear", {**body, "note": note, "by": by}))

    def ack(self, alarm_id: int, note: str | None = None, by: str = "") -> AlarmChange:
        return self._operate(alarm_id, "ack", note, by)

    def unack(self, alarm_id: int, note: str | None = None, by: str = "") -> AlarmChange:
        """Withdraws the acknowledgement."""
        return self._operate(alarm_id, "unack", note, by)

    def test_notification(self, text: str = "", by: str = "") -> TestNotification:
        return cast(TestNotification, self._post("/test", {"text": text, "by": by}))

    def events(
        self,
        type_id: str | None = None,
        resource: str | None = None,
        severity: list[str] | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[Event]:
        answer = self._get(
            "/events", type=type_id, resource=resource, severity=severity, after=after, limit=limit
        )
        return cast(list[Event], answer)

    # ----------------------------------------------------------------------- elements
    def elements(self) -> list[Element]:
        return cast(list[Element], self._get("/elements"))

    def element(self, name: str) -> ElementDetail:
        return cast(ElementDetail, self._get(f"/elements/{name}"))

    def add_element(self, element: NewElement) -> Queued:
        """Adds it; the answer names the initialization sync queued for it."""
        return cast(Queued, self._post("/elements", element))

    def set_schedule(
        self, name: str, interval: int | None = None, cron: str | None = None
    ) -> Element:
        """Changes what is given (an interval of 0: none; a cron of "": none)."""
        body: dict[str, object] = {}
        if interval is not None:
            body["interval"] = interval
        if cron is not None:
            body["cron"] = cron
        return cast(Element, self._request("PATCH", f"/elements/{name}", body=body))

    def set_address(self, name: str, url: str) -> Element:
        return cast(Element, self._request("PATCH", f"/elements/{name}", body={"url": url}))

    def set_credentials(self, name: str, username: str, password: str) -> CredentialsSet:
        body = {"username": username, "password": password}
        return cast(
            CredentialsSet, self._request("PUT", f"/elements/{name}/credentials", body=body)
        )

    def test_login(self, name: str) -> LoginTested:
        """Logs in to the element with its saved credentials (its contact alarms follow)."""
        return cast(LoginTested, self._post(f"/elements/{name}/test", {}))

    def remove_element(self, name: str) -> None:
        self._request("DELETE", f"/elements/{name}")

    def activate(self, name: str) -> Activation:
        return cast(Activation, self._post(f"/elements/{name}/activate", {}))

    # ----------------------------------------------------------------------- sync jobs
    def sync(self, name: str, kind: str, dry_run: bool = False, yes: bool = False) -> Queued:
        body = {"kind": kind, "dry_run": dry_run, "yes": yes}
        return cast(Queued, self._post(f"/elements/{name}/sync", body))

    def jobs(self, element: str | None = None, limit: int = 200) -> list[Job]:
        return cast(list[Job], self._get("/jobs", element=element, limit=limit))

    def job(self, job_id: int) -> Job:
        return cast(Job, self._get(f"/jobs/{job_id}"))

    def wait_job(
        self,
        job_id: int,
        timeout: float | None = None,
        *,
        poll: float = 0.2,
        on_poll: Callable[[Job], None] | None = None,
    ) -> Job:
        """The job once it has ended (done or failed: the caller decides what a failure
        means), or as last seen when ``timeout`` seconds pass first (None: no limit).
        ``on_poll`` sees every answer (a progress bar)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_poll is not None:
                on_poll(job)
            if job["state"] in JOB_ENDED or (deadline is not None and time.monotonic() > deadline):
                return job
            time.sleep(poll)

    # ----------------------------------------------------------------------- sharing
    def sharing_status(self) -> SharingStatus:
        return cast(SharingStatus, self._get("/sharing"))

    def start_sharing(self, element: str) -> SharingStarted:
        return cast(SharingStarted, self._post("/sharing/start", {"element": element}))

    def sync_to_hub(self, element: str) -> Queued:
        return cast(Queued, self._post("/sharing/sync", {"element": element}))

    def conflicts(self, include_resolved: bool = False) -> Conflicts:
        return cast(Conflicts, self._get("/sharing/conflicts", all=str(include_resolved).lower()))

    def resolve_conflict(self, conflict_id: int, take: str, by: str) -> Resolved:
        body = {"take": take, "by": by}
        return cast(Resolved, self._post(f"/sharing/conflicts/{conflict_id}/resolve", body))

    def resolve_conflicts(self, take: str, by: str, element: str | None = None) -> Resolved:
        body = {"take": take, "by": by, "element": element}
        return cast(Resolved, self._post("/sharing/conflicts/resolve", body))

    def plan_resolve(self, conflict_id: int | None, take: str, element: str | None = None) -> Plan:
        """What a resolve would do now (nothing changed)."""
        if conflict_id is not None:
            return cast(Plan, self._post(f"/sharing/conflicts/{conflict_id}/plan", {"take": take}))
        return cast(Plan, self._post("/sharing/conflicts/plan", {"take": take, "element": element}))

    def devices(self) -> list[Device]:
        return cast(list[Device], self._get("/sharing/devices"))

    def device_data_sync(self) -> None:
        self._post("/sharing/device-data/sync", {})

    # ----------------------------------------------------------------------- distributions
    def distributions(
        self, element: str | None = None, states: list[str] | None = None, limit: int = 1000
    ) -> list[Distribution]:
        answer = self._get(
            "/distributions", limit=limit, element=element or None, state=states or None
        )
        return cast(list[Distribution], answer)

    def retry_distribution(self, distribution_id: int, by: str) -> Retried:
        return cast(Retried, self._post(f"/distributions/{distribution_id}/retry", {"by": by}))

    def retry_distributions(self, by: str, element: str | None = None) -> Retried:
        return cast(Retried, self._post("/distributions/retry", {"element": element, "by": by}))

    def delete_distribution(self, distribution_id: int, by: str) -> Deleted:
        answer = self._request("DELETE", f"/distributions/{distribution_id}", params={"by": by})
        return cast(Deleted, answer)

    def delete_distributions(self, by: str, element: str | None = None) -> Deleted:
        return cast(Deleted, self._post("/distributions/delete", {"element": element, "by": by}))

    # ----------------------------------------------------------------------- shared objects
    def add_object(self, cls: str, key: str, data: JsonObject) -> HubChanges:
        return cast(HubChanges, self._post(f"/objects/{_segment(cls)}", {"key": key, "data": data}))

    def set_object(self, cls: str, key: str, data: JsonObject) -> HubChanges:
        path = f"/objects/{_segment(cls)}/{_segment(key)}"
        return cast(HubChanges, self._request("PATCH", path, body={"data": data}))

    def delete_object(self, cls: str, key: str) -> HubChanges:
        path = f"/objects/{_segment(cls)}/{_segment(key)}"
        return cast(HubChanges, self._request("DELETE", path))

    def change_objects(self, changes: list[JsonObject]) -> HubChanges:
        """Several hub changes at once ({"op", "class", "key", "data"} each): all or none."""
        return cast(HubChanges, self._post("/objects", {"changes": changes}))

    def shared_object(self, cls: str, key: str) -> JsonObject:
        return cast(JsonObject, self._get(f"/objects/{_segment(cls)}/{_segment(key)}"))

    def shared_objects(self, cls: str, limit: int | None = None) -> list[SharedObject]:
        """The hub's objects of ``cls`` in key order, at most ``limit`` (None: all), read
        page by page."""
        found: list[SharedObject] = []
        after: str | None = None
        while limit is None or len(found) < limit:
            size = OBJECTS_PAGE if limit is None else min(OBJECTS_PAGE, limit - len(found))
            page = cast(
                list[SharedObject], self._get(f"/objects/{_segment(cls)}", limit=size, after=after)
            )
            found += page
            if len(page) < size:
                break
            after = page[-1]["key"]
        return found
