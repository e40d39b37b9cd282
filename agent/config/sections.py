"""The agent's own sections: [agent], [store], [api], [retention], [sync], [sharing],
[cluster]."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ByteSize, Field, field_validator, model_validator

from agent.config.full_init import FULL_INIT_OBJECTS, check_full_init_entry
from agent.config.values import COUNT_MAX, Duration, Section, check_backoff, parse_address, within

NODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""An agent's node name: what the cluster's members table and status call it."""


def default_node() -> str:
    """This machine's host name, made to fit ``NODE_PATTERN`` (a host name nearly always
    does already)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).lstrip("_.-")[:64]
    return name or "provsync"


class AgentSettings(Section):
    data_dir: Path = Path("var")
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    hostname: str = ""
    node: str = Field(default="", pattern=f"(^$)|({NODE_PATTERN})")
    """This agent's name among the agents of one store; empty: the host name."""
    shutdown_timeout: Annotated[Duration, within("100ms", "1h")] = 10.0
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """The agent's event loop (API, SNMP, exporters): auto is uvloop when it is installed
    (Linux, macOS), else the standard library's."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def node_name(self) -> str:
        return self.node or default_node()


class StoreSettings(Section):
    url: str = ""
    """Empty: an SQLite file ``provsync.db`` in the data directory."""
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"
    batch_max: int = Field(default=512, ge=1, le=10000)
    """Most alarm transitions committed in one transaction (group commit)."""
    key_file: str = ""
    """The key that encrypts element credentials in the store (kept outside it). Empty:
    ``<data_dir>/secret.key``, generated (mode 0600) on first start; relative paths are
    under the data directory."""
    lock_check_interval: Annotated[Duration, within("100ms", "1m")] = 1.0
    """PostgreSQL: how often the owner checks the connection holding its lock, and retries
    taking the lock back once lost (commits are refused meanwhile)."""
    server_timeout: Annotated[Duration, within("1s", "1m")] = 3.0
    """PostgreSQL: the most a connect, a statement of the lock check or unacknowledged data
    on any store connection may wait for a silent server."""


class ApiSettings(Section):
    listen: str = "127.0.0.1:8163"
    token: str = ""
    """Empty: a token is generated on first start into ``<data_dir>/api.token`` (mode 0600)."""
    max_body: ByteSize = Field(default=ByteSize(1 << 20), ge=1024, le=1 << 30)
    """Largest request body ("1MiB", "64KiB" or bytes); larger ones get 413."""
    max_pending_writes: int = Field(default=2000, ge=1, le=1_000_000)
    """Alarm writes from the API waiting for the writer; past it, 503 with Retry-After.
    Each operation of a batch counts."""
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    """Operations in one request of the batch route at most; a batch is also refused (422)
    when it is longer than max_pending_writes, which it could never fit in."""
    http: Literal["auto", "httptools", "h11"] = "auto"
    """HTTP/1.1 parser of the control API: auto is httptools when it is installed."""
    header_timeout: Annotated[Duration, within("100ms", "5m")] = 10.0
    """A request's headers must arrive within this of its first byte; else closed."""
    max_connections: int = Field(default=256, ge=1, le=65_536)
    """Open connections to the control API; past it, new ones are closed at once."""

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        parse_address(value)
        return value

    @property
    def host(self) -> str:
        return parse_address(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_address(self.listen)[1]


class RetentionSettings(Section):
    cleared_alarm_days: float = Field(default=30, ge=0, le=3650, allow_inf_nan=False)
    event_days: float = Field(default=30, ge=0, le=3650, allow_inf_nan=False)
    notification_log_max: int = Field(default=100_000, ge=100, le=COUNT_MAX)
    notification_log_days: float = Field(default=30, ge=0, le=3650, allow_inf_nan=False)
    purge_interval: Annotated[Duration, within("1s", "7d")] = 3600.0
    max_backlog: int = Field(default=1_000_000, ge=1, le=COUNT_MAX)
    """Newest undelivered notifications of a configured export target that retention keeps
    past notification_log_max / notification_log_days; older ones are purged as a loss."""
    max_backlog_age: Annotated[Duration, within("1m", "3650d")] = 30 * 86400.0
    """Undelivered notifications older than this are no longer kept for a target."""


class SyncSettings(Section):
    max_concurrent_init: int = Field(default=9, ge=1, le=9)
    """Initialization syncs running at once (the vendor guidance: fewer than 10)."""
    incremental_interval: Annotated[Duration, within("1m", "366d", off=True)] = 86400.0
    """Default schedule of a new element's recurring incremental sync; "0s": none."""
    escalate_after_changes: int = Field(default=1800, ge=1, le=COUNT_MAX)
    full_init_objects: tuple[str, ...] = FULL_INIT_OBJECTS
    """Objects whose change asks for an initialization (``class`` or ``class:key``); the
    incremental applies every other change and raises init-sync-required."""
    service_user: str = Field(default="provsync", min_length=1, max_length=64)
    """The user the agent writes to elements as; its changes coming back are the hub's own
    (kept in its copy, not pulled as changes), as are the element's registered login's."""
    page_size: int = Field(default=1000, ge=1, le=10_000)
    timeout: Annotated[Duration, within("10ms", "1h")] = 10.0
    retries: int = Field(default=3, ge=0, le=10)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, values: Any) -> Any:
        # The key of earlier releases (whole classes only): say what replaced it rather
        # than only that it is unknown.
        if isinstance(values, dict) and "full_sync_only_classes" in values:
            raise ValueError(
                "full_sync_only_classes was replaced by full_init_objects (entries 'class' "
                "or 'class:key', default: the vendor document's list; see etc/provsync.toml)"
            )
        return values

    @field_validator("full_init_objects")
    @classmethod
    def _objects(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            check_full_init_entry(entry)
        return value


class SharingSettings(Section):
    element_token: str = ""
    """Bearer token of the element-to-hub routes only (/api/v1/sharing/start, sync, updates,
    device-data). Empty: generated on first start into ``<data_dir>/element.token``."""
    min_element_version: str = Field(default="10.0", pattern=r"^[0-9]+(\.[0-9]+)*$")
    """Elements older than this are refused when they try to start sharing."""
    classes: tuple[str, ...] = ("user", "station", "directory-number", "group", "mailbox")
    """Object classes shared between the hub and the elements."""
    distribution_cap: int = Field(default=60_000, ge=1, le=COUNT_MAX)
    """Most pending plus failed distributions per element; hub changes beyond are refused."""
    errors_major_at: int = Field(default=0, ge=0, le=COUNT_MAX)
    """Failed distributions for one element at which distribution-errors becomes major;
    0 (the default): never, it stays minor as the vendor document has it (opt-in)."""
    retry_initial: Annotated[Duration, within("10ms", "1h")] = 1.0
    retry_max: Annotated[Duration, within("10ms", "1d")] = 60.0
    """Backoff of distributions that failed in transport (the element did not answer)."""
    batch_size: int = Field(default=200, ge=1, le=10_000)
    """Distributions one element's sender takes from the store at a time."""
    keep_done: Annotated[Duration, within("1s", "366d", off=True)] = 86400.0
    """How long applied distributions stay listed before they are purged ("0s": not kept)."""

    @model_validator(mode="after")
    def _backoff(self) -> SharingSettings:
        check_backoff(self.retry_initial, self.retry_max)
        return self


class ClusterSettings(Section):
    """Several agents on one PostgreSQL store: the advisory lock's holder leads, the
    others stand by and take the lead when it is free."""

    enabled: bool = False
    poll_interval: Annotated[Duration, within("100ms", "1m")] = 1.0
    """How often a standby tries to take the store's lock (to lead)."""
    heartbeat_interval: Annotated[Duration, within("100ms", "1m")] = 1.0
    """How often every member writes its row of ``cluster_members``."""
    member_timeout: Annotated[Duration, within("1s", "1h")] = 10.0
    """A member whose heartbeat is older than this is listed as gone (and alarmed:
    cluster-member-lost)."""
    forget_after: Annotated[Duration, within("1m", "365d")] = 86_400.0
    """A member gone or stopped for longer than this is deleted from the members table."""
