"""What the control API answers, typed where its users read fields.

Each TypedDict names the fields the CLI, the tests and the benches read; the agent's
answers carry more (``--json`` prints them whole), and the client does not check them:
the agent and this module are released together.
"""

from __future__ import annotations

from typing import NotRequired, TypeAlias, TypedDict

JsonValue: TypeAlias = "dict[str, JsonValue] | list[JsonValue] | str | int | float | bool | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"


# --------------------------------------------------------------------------- agent
class ExporterStatus(TypedDict):
    name: str
    cursor: int
    backlog: int
    delivered: int
    failures: int
    last_error: str | None
    down_for: NotRequired[float | None]


class ClusterLeader(TypedDict):
    node: str
    api_url: str | None
    pid: int | None
    heartbeat_age: NotRequired[float | None]


class ClusterMemberStatus(TypedDict):
    node: str
    role: str
    api_url: str
    pid: int
    heartbeat_age: float
    leader: bool
    gone: bool


class AgentStatus(TypedDict):
    version: str
    pid: int
    started_at: str
    store: str
    # A standby answers neither: it owns no writer and runs no exporters.
    last_seq: NotRequired[int]
    exporters: NotRequired[list[ExporterStatus]]
    # None while the store is fenced: the agent answers without reading it.
    store_state: NotRequired[str | None]
    active_alarms: NotRequired[dict[str, int] | None]
    node: NotRequired[str]
    role: NotRequired[str]
    """leader (a plain agent too) or standby ([cluster])."""
    leader: NotRequired[ClusterLeader | None]
    members: NotRequired[list[ClusterMemberStatus]]


class VendorName(TypedDict):
    name: str
    product: str
    document: str


class AlarmType(TypedDict):
    id: str
    kind: str
    severity: str
    name: str
    event_type: str
    probable_cause: str
    # None: no vendor counterpart (provsync's own types, the site's).
    vendor: VendorName | None


# --------------------------------------------------------------------------- alarms, events
class Alarm(TypedDict):
    id: int
    type: str
    resource: str
    qualifier: str
    severity: str
    state: str
    count: int
    ack_by: str | None
    changed_at: str | None
    text: str


class AlarmHistoryEntry(TypedDict):
    at: str
    seq: int | None
    change: str
    severity: str
    by: str | None
    note: str | None


class AlarmDetail(Alarm):
    history: list[AlarmHistoryEntry]


class AlarmChange(TypedDict):
    alarm: Alarm
    change: str
    seq: int | None


class TestNotification(TypedDict):
    seq: int
    targets: list[str]


class Event(TypedDict):
    seq: int
    time: str
    severity: str
    type: str
    resource: str
    text: str


# --------------------------------------------------------------------------- elements, jobs
class NewElement(TypedDict):
    """The body of ``POST /elements``: what is left out takes the API's default (type
    call server, connector http, the configured interval, no cron, no uses)."""

    name: str
    url: str
    type: NotRequired[str]
    connector: NotRequired[str]
    username: NotRequired[str | None]
    password: NotRequired[str | None]
    # Seconds; 0: no schedule; None: the configured default.
    interval: NotRequired[int | None]
    cron: NotRequired[str]
    uses: NotRequired[list[str]]


class Element(TypedDict):
    name: str
    type: str
    sync_state: str
    software_version: str | None
    cursor: str | None
    last_sync_at: str | None
    address: str
    interval: int
    cron: str
    # When the schedule queues the next incremental; None: no schedule.
    next_sync_at: str | None


class ElementDetail(Element):
    objects: NotRequired[dict[str, int]]


class ConsoleLink(TypedDict):
    url: str
    expires_in: float
    read_only: bool


class CredentialsSet(TypedDict):
    element: str
    credentials: str
    tested: str
    """The login test's outcome in words ("" when nothing tested them)."""


class LoginTested(TypedDict):
    element: str
    tested: str
    """The login test's outcome in words ("" when nothing tested it)."""


class ElementName(TypedDict):
    name: str


class Activation(TypedDict):
    elements: list[ElementName]


class Queued(TypedDict):
    """A job the agent queued (a sync, the initialization of an added element)."""

    job: int


class JobCounts(TypedDict, total=False):
    """What a job has counted: ``progress`` of ``total`` while it runs; an initialization
    ends with ``objects`` per class, an incremental sync with ``applied`` changes."""

    progress: int
    total: int
    objects: dict[str, int]
    applied: int
    skipped_own: int
    notify_sync_missed: int
    init_required: list[str]
    """Full-initialization objects that changed (an initialization is required)."""


class Job(TypedDict):
    id: int
    element: str
    kind: str
    trigger: str
    state: str
    started: str | None
    ended: str | None
    error: str | None
    counts: JobCounts


# --------------------------------------------------------------------------- sharing
class ConflictCounts(TypedDict):
    unresolved: int
    review: int


class SharingElement(TypedDict):
    name: str
    type: str
    sharing: str
    device_data: bool
    pending: int
    errors: int


class SharingStatus(TypedDict):
    state: str
    ftp_inactive: bool
    blocked: str | None
    sync_running: JsonValue
    store_check: list[str]
    """Elements whose change log is still to be read for a restored store (agent start)."""
    conflicts: ConflictCounts
    elements: list[SharingElement]


class SharingStarted(TypedDict):
    element: str
    state: str


class ConflictSummary(TypedDict):
    automatic: int
    review: int
    unresolved: int
    resolved: int


# "class" is a keyword: these take the functional form.
Conflict = TypedDict(
    "Conflict",
    {
        "id": int,
        "category": str,
        "element": str,
        "class": str,
        "key": str,
        "hub_key": str,
        "hub": JsonValue,
        "element_value": JsonValue,
        "base": JsonValue,
        "state": str,
        "resolution": str | None,
    },
)


class Conflicts(TypedDict):
    summary: ConflictSummary
    conflicts: list[Conflict]


class Resolved(TypedDict):
    resolved: list[JsonValue]


PlannedChange = TypedDict("PlannedChange", {"class": str, "op": str, "key": str, "data": JsonValue})


class PlannedDecision(TypedDict):
    conflict: JsonObject
    take: str
    hub_now: JsonValue
    written_to: str | None
    changes: list[PlannedChange]
    sent_to: list[str]
    cancelled: list[JsonObject]
    refused: str | None


class Plan(TypedDict):
    take: str
    plan: list[PlannedDecision]


class Device(TypedDict):
    number: str
    element: NotRequired[str]
    details: NotRequired[JsonValue]


Distribution = TypedDict(
    "Distribution",
    {
        "id": int,
        "element": str,
        "state": str,
        "op": str,
        "class": str,
        "key": str,
        "attempts": int,
        "error": str | None,
        "updated": str | None,
    },
)


class Retried(TypedDict):
    """Distributions sent again, per element."""

    retried: dict[str, int]


class Deleted(TypedDict):
    """Distributions deleted, per element."""

    deleted: dict[str, int]


HubChange = TypedDict("HubChange", {"op": str, "class": str, "key": str})


class HubChanges(TypedDict):
    changes: list[HubChange]
    distributions: int


class SharedObject(TypedDict):
    key: str
    data: JsonValue
    origin: str
    changed: str | None
