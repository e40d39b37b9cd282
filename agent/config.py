"""Configuration: TOML read with ``tomllib`` into validated, frozen settings.

Every section and key, with its default, is documented in ``etc/provsync.toml``. Unknown
keys, wrong types and bad values raise :class:`ConfigError` naming the file, the key path
and what was expected; the CLI turns that into exit status 2.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import secrets
import tomllib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.alarms.catalog import BUILTIN_TYPES, EventType, Kind
from agent.alarms.probable_cause import PROBABLE_CAUSES
from agent.alarms.severity import Severity
from agent.durations import format_duration, parse_duration
from agent.errors import ConfigError
from agent.inform_bounds import MAX_INFORM_WAIT, v2c_inform_wait, v3_inform_deadline
from agent.oids import check_enterprise_root, parse_oid

ENV_CONFIG = "PROVSYNC_CONFIG"
ENV_DATA_DIR = "PROVSYNC_DATA_DIR"
SEARCH_PATHS = (Path("etc/provsync.toml"), Path("/etc/provsync/provsync.toml"))

CONFIG_MAX_BYTES = 1 << 20
"""A configuration file larger than this is refused before it is parsed."""


def parse_address(value: str, default_port: int | None = None) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)|([^:\[\]]+)", value)
    if not match:
        raise ValueError(f"expected HOST:PORT or [IPV6]:PORT, got {value!r}")
    host = match.group(1) or match.group(3) or match.group(5)
    port_text = match.group(2) or match.group(4)
    if port_text is None:
        if default_port is None:
            raise ValueError(f"expected HOST:PORT, got {value!r} (no port)")
        return host, default_port
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    return host, port


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""Finite, 0 to ten years; each key narrows that with :func:`within` to what fits its use."""

COUNT_MAX = 10**9
"""The most any count setting may be: far above any real store, and far below the 2**63
where SQLite overflows (a count reaches SQL as a LIMIT, an OFFSET or a comparison)."""


def within(minimum: str, maximum: str, *, off: bool = False) -> AfterValidator:
    """The range of one duration key, e.g. ``Annotated[Duration, within("10ms", "1h")]``.

    ``off``: ``"0s"`` is also accepted and keeps its documented meaning (disabled, none).
    A zero or near-zero interval, retry or timeout makes a loop spin instead of waiting.
    """
    low, high = parse_duration(minimum), parse_duration(maximum)
    expected = f"from {minimum} to {maximum}"
    if off:
        expected = f"0s (off) or {expected}"

    def check(seconds: float) -> float:
        if not (off and seconds == 0) and not low <= seconds <= high:
            raise ValueError(f"must be {expected}")
        return seconds

    return AfterValidator(check)


def check_unique(what: str, names: Iterable[str]) -> None:
    """ValueError naming every name of ``names`` that occurs more than once.

    ``what`` is the plural the message starts with ("SNMP target names").
    """
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(repeated)}")


def check_backoff(initial: float, most: float) -> None:
    if most < initial:
        raise ValueError(
            f"retry_max ({format_duration(most)}) cannot be shorter than retry_initial "
            f"({format_duration(initial)})"
        )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class AgentSettings(_Section):
    data_dir: Path = Path("var")
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    hostname: str = ""
    shutdown_timeout: Annotated[Duration, within("100ms", "1h")] = 10.0
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """The agent's event loop (API, SNMP, exporters): auto is uvloop when it is installed
    (Linux, macOS), else the standard library's."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class StoreSettings(_Section):
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


class ApiSettings(_Section):
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


class RetentionSettings(_Section):
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


class FileExporterSettings(_Section):
    path: Path
    """Relative paths are under the data directory."""
    name: str = ""
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1 << 40)
    backups: int = Field(default=5, ge=0, le=1000)
    min_severity: Severity = Severity.INDETERMINATE
    fsync: bool = True

    @property
    def target_name(self) -> str:
        return self.name or f"file:{self.path}"


class ExporterSettings(_Section):
    backlog_threshold: int = Field(default=1000, ge=1, le=COUNT_MAX)
    batch_size: int = Field(default=500, ge=1, le=10000)
    retry_initial: Annotated[Duration, within("10ms", "1h")] = 1.0
    retry_max: Annotated[Duration, within("10ms", "1d")] = 60.0
    poll_interval: Annotated[Duration, within("10ms", "1h")] = 1.0
    deliver_timeout: Annotated[Duration, within("100ms", "1h")] = 30.0
    """Longest one open may take, and one delivery may go without progress (the deadline
    restarts at every acknowledged notification), before the attempt counts as failed."""
    down_reminder_interval: Annotated[Duration, within("100ms", "1d")] = 300.0
    """While a target stays down, one reminder line in the log this often."""
    file: tuple[FileExporterSettings, ...] = ()

    @model_validator(mode="after")
    def _backoff(self) -> ExporterSettings:
        check_backoff(self.retry_initial, self.retry_max)
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ExporterSettings:
        check_unique("exporter names", (f.target_name for f in self.file))
        return self


NOTIFICATION_KINDS = ("alarm-raised", "alarm-changed", "alarm-cleared", "event", "heartbeat")
AUTH_PROTOCOLS = ("none", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("none", "AES-128")


class SnmpCommunity(_Section):
    """A read-only SNMPv1/v2c community. The name is a credential: never logged."""

    name: SecretStr

    @field_validator("name")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("a community name cannot be empty")
        return value


class SnmpUser(_Section):
    """An SNMPv3 USM user with read-only access (and the identity for v3 targets)."""

    name: str = Field(min_length=1, max_length=32)
    auth_protocol: Literal[AUTH_PROTOCOLS] = "SHA-256"  # type: ignore[valid-type]
    auth_key: SecretStr = SecretStr("")
    priv_protocol: Literal[PRIV_PROTOCOLS] = "AES-128"  # type: ignore[valid-type]
    priv_key: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _keys(self) -> SnmpUser:
        if self.auth_protocol != "none" and len(self.auth_key.get_secret_value()) < 8:
            raise ValueError(f"user {self.name}: auth_key needs at least 8 characters")
        if self.priv_protocol != "none":
            if self.auth_protocol == "none":
                raise ValueError(f"user {self.name}: privacy needs authentication")
            if len(self.priv_key.get_secret_value()) < 8:
                raise ValueError(f"user {self.name}: priv_key needs at least 8 characters")
        return self

    @property
    def level(self) -> str:
        if self.auth_protocol == "none":
            return "noAuthNoPriv"
        return "authNoPriv" if self.priv_protocol == "none" else "authPriv"


class SnmpTarget(_Section):
    """Where traps or informs go."""

    address: str
    name: str = ""
    version: Literal["v2c", "v3"] = "v2c"
    kind: Literal["trap", "inform"] = "trap"
    community: SecretStr = SecretStr("")
    user: str = ""
    min_severity: Severity = Severity.INDETERMINATE
    kinds: tuple[Literal[NOTIFICATION_KINDS], ...] = NOTIFICATION_KINDS  # type: ignore[valid-type]
    timeout: Annotated[Duration, within("10ms", "10m")] = 1.0
    retries: int = Field(default=3, ge=0, le=20)
    max_rate: float = Field(default=0, ge=0, le=1_000_000)
    """Traps a second at most (bursts of 50 above it); 0: as fast as the batch goes."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        parse_address(value, default_port=162)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SnmpTarget:
        if self.version == "v2c" and not self.community.get_secret_value():
            raise ValueError(f"target {self.address}: a v2c target needs a community")
        if self.version == "v3" and not self.user:
            raise ValueError(f"target {self.address}: a v3 target needs a user")
        return self

    @model_validator(mode="after")
    def _bounded_inform_wait(self) -> SnmpTarget:
        # Each key has its own range, but together they can make one inform wait for
        # decades (v2c doubles the timeout on every retry): bound the total.
        if self.kind != "inform":
            return self
        wait = (v2c_inform_wait if self.version == "v2c" else v3_inform_deadline)(
            self.timeout, self.retries
        )
        if wait > MAX_INFORM_WAIT:
            raise ValueError(
                f"target {self.address}: timeout and retries let one inform wait {wait:g}s, "
                f"at most {MAX_INFORM_WAIT:g}s; lower timeout or retries"
            )
        return self

    @property
    def target_name(self) -> str:
        return self.name or f"snmp:{self.address}"


class SnmpSettings(_Section):
    enabled: bool = True
    enterprise_oid: str = "1.3.6.1.4.1.32473.1"
    listen: tuple[str, ...] = ("127.0.0.1:1161",)
    engine_id: str = ""
    """Hex; empty: generated once and kept in the store and ``<data_dir>/snmp-engine.json``
    (boots: counted in the store per engine ID, see agent.export.snmp.boots)."""
    heartbeat_interval: Annotated[Duration, within("100ms", "1d", off=True)] = 300.0
    notification_log_size: int = Field(default=1000, ge=1, le=100_000)
    allow_v1: bool = True
    allow_noauth: bool = False
    sys_contact: str = ""
    sys_location: str = ""
    communities: tuple[SnmpCommunity, ...] = ()
    users: tuple[SnmpUser, ...] = ()
    targets: tuple[SnmpTarget, ...] = ()

    @field_validator("enterprise_oid")
    @classmethod
    def _oid(cls, value: str) -> str:
        check_enterprise_root(parse_oid(value))
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            parse_address(address)
        return value

    @field_validator("engine_id")
    @classmethod
    def _engine_id(cls, value: str) -> str:
        if value:
            try:
                raw = bytes.fromhex(value.removeprefix("0x"))
            except ValueError:
                raise ValueError("engine_id must be hex, e.g. 80007e5903...") from None
            if not 5 <= len(raw) <= 32:
                raise ValueError("engine_id must be 5 to 32 octets (RFC 3411)")
        return value

    @model_validator(mode="after")
    def _references(self) -> SnmpSettings:
        check_unique("SNMP user names", (u.name for u in self.users))
        users = {u.name: u for u in self.users}
        for user in self.users:
            if user.level == "noAuthNoPriv" and not self.allow_noauth:
                raise ValueError(
                    f"user {user.name} has no authentication; set allow_noauth = true to allow"
                )
        for target in self.targets:
            if target.version == "v3" and target.user not in users:
                raise ValueError(
                    f"target {target.address}: no [[snmp.users]] named {target.user!r}"
                )
            if target.version == "v3" and users[target.user].auth_protocol == "none":
                raise ValueError(
                    f"target {target.address}: user {target.user} has no authentication; "
                    "v3 notifications need at least authNoPriv"
                )
        check_unique("SNMP target names", (t.target_name for t in self.targets))
        return self

    @property
    def root(self) -> tuple[int, ...]:
        return parse_oid(self.enterprise_oid)


SYSLOG_PORTS = {"udp": 514, "tcp": 514, "tls": 6514, "relp": 2514}


class SyslogCollector(_Section):
    """One syslog collector: transport, address, filter; its own cursor on the log."""

    address: str
    transport: Literal["udp", "tcp", "tls", "relp"] = "udp"
    name: str = ""
    framing: Literal["octet-counting", "lf"] = "octet-counting"
    """tcp: "lf" for collectors that split on newlines (RFC 6587 3.4.2); never for tls."""
    min_severity: Severity = Severity.INDETERMINATE
    kinds: tuple[Literal[NOTIFICATION_KINDS], ...] = NOTIFICATION_KINDS  # type: ignore[valid-type]
    timeout: Annotated[Duration, within("10ms", "10m")] = 5.0
    ca_file: str = ""
    fingerprint: str = ""
    """TLS: pin the server certificate by its SHA-256 fingerprint instead of a CA."""
    server_name: str = ""
    """TLS: the name the server certificate must carry (default: the address's host)."""
    cert_file: str = ""
    key_file: str = ""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        parse_address(value, default_port=514)
        return value

    @field_validator("framing")
    @classmethod
    def _framing(cls, value: str, info: ValidationInfo) -> str:
        # RFC 5425 section 4.3: syslog over TLS is octet-counted; an LF-framed message
        # would be misread by every conforming receiver. Plain TCP keeps the choice
        # (RFC 6587 3.4.2, rsyslog's default framing).
        if value == "lf" and info.data.get("transport") == "tls":
            raise ValueError(
                'TLS requires octet-counting framing (RFC 5425 section 4.3); "lf" is for tcp only'
            )
        return value

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        digits = value.lower().removeprefix("sha256:").replace(":", "")
        if value and (len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits)):
            raise ValueError("expected a SHA-256 fingerprint: 64 hex digits, colons allowed")
        return value

    @model_validator(mode="after")
    def _tls(self) -> SyslogCollector:
        if self.transport == "tls" and not (self.ca_file or self.fingerprint):
            raise ValueError(
                f"collector {self.address}: TLS needs ca_file or fingerprint to verify the server"
            )
        if self.key_file and not self.cert_file:
            raise ValueError(f"collector {self.address}: key_file needs cert_file")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_address(self.address, default_port=SYSLOG_PORTS[self.transport])

    @property
    def target_name(self) -> str:
        return self.name or f"syslog:{self.transport}:{self.address}"


class AgentLogSyslog(_Section):
    """The agent's own operational log, also sent to syslog (UDP, best effort)."""

    enabled: bool = False
    address: str = "127.0.0.1:514"
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        parse_address(value, default_port=514)
        return value


UDP_MIN_MESSAGE = 480
UDP_MAX_MESSAGE = 65000


class SyslogSettings(_Section):
    facility: Literal[
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ] = "local0"  # fmt: skip
    hostname: str = ""
    """HOSTNAME of the messages; empty: [agent] hostname, else this machine's FQDN."""
    max_message_size: int = Field(default=8192, ge=480, le=65000)
    """Longest message over tcp, tls and relp (octets)."""
    udp_max_message_size: int = 2048
    """Longest datagram over udp (octets): RFC 5426 section 3.2 only guarantees 480 (IPv4)
    and 1180 (IPv6), and recommends that every receiver accept 2048."""
    collectors: tuple[SyslogCollector, ...] = ()
    agent_log: AgentLogSyslog = AgentLogSyslog()

    @model_validator(mode="before")
    @classmethod
    def _udp_size_default(cls, data: object) -> object:
        # A site that lowered max_message_size (to stay under its MTU) before the UDP
        # limit had its own key keeps that lower limit for UDP.
        if isinstance(data, dict) and "udp_max_message_size" not in data:
            size = data.get("max_message_size")
            if type(size) is int and UDP_MIN_MESSAGE <= size < 2048:
                return {**data, "udp_max_message_size": size}
        return data

    @field_validator("udp_max_message_size")
    @classmethod
    def _udp_size(cls, value: int) -> int:
        if not UDP_MIN_MESSAGE <= value <= UDP_MAX_MESSAGE:
            raise ValueError(
                f"must be from {UDP_MIN_MESSAGE} (what RFC 5426 section 3.2 guarantees over "
                f"IPv4) to {UDP_MAX_MESSAGE} octets; 2048 is what every receiver should accept"
            )
        return value

    @model_validator(mode="after")
    def _unique(self) -> SyslogSettings:
        check_unique("syslog collector names", (c.target_name for c in self.collectors))
        return self


class SyncSettings(_Section):
    max_concurrent_init: int = Field(default=9, ge=1, le=9)
    """Initialization syncs running at once (the vendor guidance: fewer than 10)."""
    incremental_interval: Annotated[Duration, within("1m", "366d", off=True)] = 86400.0
    """Default schedule of a new element's recurring incremental sync; "0s": none."""
    escalate_after_changes: int = Field(default=1800, ge=1, le=COUNT_MAX)
    full_sync_only_classes: tuple[str, ...] = ("system-parameter", "dial-plan", "cabinet", "board")
    service_user: str = Field(default="provsync", min_length=1, max_length=64)
    """The user the agent writes to elements as; its own changes are skipped on the way back."""
    page_size: int = Field(default=1000, ge=1, le=10_000)
    timeout: Annotated[Duration, within("10ms", "1h")] = 10.0
    retries: int = Field(default=3, ge=0, le=10)


class SharingSettings(_Section):
    element_token: str = ""
    """Bearer token of the element-to-hub routes only (/api/v1/sharing/start, sync, updates,
    device-data). Empty: generated on first start into ``<data_dir>/element.token``."""
    min_element_version: str = Field(default="10.0", pattern=r"^[0-9]+(\.[0-9]+)*$")
    """Elements older than this are refused when they try to start sharing."""
    classes: tuple[str, ...] = ("user", "station", "directory-number", "group", "mailbox")
    """Object classes shared between the hub and the elements."""
    distribution_cap: int = Field(default=60_000, ge=1, le=COUNT_MAX)
    """Most pending plus failed distributions per element; hub changes beyond are refused."""
    errors_major_at: int = Field(default=100, ge=1, le=COUNT_MAX)
    """Failed distributions for one element at which distribution-errors becomes major."""
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


_TYPE_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"
_BUILTIN_IDS = frozenset(t.id for t in BUILTIN_TYPES)


class AlarmTypeSettings(_Section):
    id: str = Field(pattern=_TYPE_ID)
    name: str = Field(min_length=1, max_length=255)
    kind: Kind = Kind.ALARM
    severity: Severity = Severity.MINOR
    event_type: EventType = EventType.OTHER
    probable_cause: str = "other"
    """An IANAItuProbableCause label (agent.alarms.probable_cause), as RFC 5674 3.2 requires."""
    description: str = ""
    clear_instructions: str = ""
    resolution: str = ""

    @field_validator("id")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in _BUILTIN_IDS:
            raise ValueError(f"{value!r} is a built-in alarm type; choose another id")
        return value

    @field_validator("probable_cause")
    @classmethod
    def _iana_label(cls, value: str) -> str:
        # Syslog's alarm element carries the label as it is (RFC 5674 section 3.2) and the
        # MIB its IANA number: a label outside the registry would be misread by both.
        if value not in PROBABLE_CAUSES:
            near = difflib.get_close_matches(value, PROBABLE_CAUSES, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(
                "not an IANAItuProbableCause label (RFC 5674 section 3.2 requires one; "
                f"'other' if none fits){hint}"
            )
        return value

    @field_validator("severity")
    @classmethod
    def _not_cleared(cls, value: Severity) -> Severity:
        if value is Severity.CLEARED:
            raise ValueError("a type's default severity cannot be 'cleared'")
        return value


class Settings(_Section):
    agent: AgentSettings = AgentSettings()
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    retention: RetentionSettings = RetentionSettings()
    exporters: ExporterSettings = ExporterSettings()
    snmp: SnmpSettings = SnmpSettings()
    syslog: SyslogSettings = SyslogSettings()
    sync: SyncSettings = SyncSettings()
    sharing: SharingSettings = SharingSettings()
    alarm_types: tuple[AlarmTypeSettings, ...] = ()
    source: Path | None = Field(default=None, exclude=True)
    """The file these settings came from (None: built-in defaults)."""

    @model_validator(mode="after")
    def _unique_targets(self) -> Settings:
        # Every export target keeps its cursor under its name: names must not collide.
        check_unique(
            "export target names",
            itertools.chain(
                (f.target_name for f in self.exporters.file),
                (t.target_name for t in self.snmp.targets),
                (c.target_name for c in self.syslog.collectors),
            ),
        )
        return self

    @model_validator(mode="after")
    def _unique_types(self) -> Settings:
        check_unique("alarm type ids", (t.id for t in self.alarm_types))
        return self

    @property
    def data_dir(self) -> Path:
        return self.agent.data_dir

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_dir / 'provsync.db'}"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "api.token"

    @property
    def element_token_file(self) -> Path:
        return self.data_dir / "element.token"

    @property
    def store_key_file(self) -> Path:
        return self.exporter_path(Path(self.store.key_file or "secret.key"))

    def exporter_path(self, path: Path) -> Path:
        return path if path.is_absolute() else self.data_dir / path


def _format_location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


_SECRET_KEYS = frozenset(
    {"token", "element_token", "auth_key", "priv_key", "community", "password"}
)


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    return bool(_SECRET_KEYS.intersection(map(str, loc))) or "communities" in loc


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        where = _format_location(loc)
        if error["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{where}'")
            continue
        message = error["msg"].removeprefix("Value error, ")
        got = error.get("input")
        hide = isinstance(got, dict | list) or "got " in message or _is_secret(loc)
        got_text = "" if hide else f" (got {got!r})"
        lines.append(f"{source}: {where}: {message}{got_text}")
    return "\n".join(lines)


def settings_from_dict(data: dict[str, Any], source: str = "<config>") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            # Bounded: --config /dev/zero or a runaway file must not eat the memory.
            raw = handle.read(CONFIG_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > CONFIG_MAX_BYTES:
        raise ConfigError(f"{path}: larger than {CONFIG_MAX_BYTES // 1024} KiB, refused")
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}), TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses arrays and inline tables recursively.
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None


def load_settings(path: Path | None) -> Settings:
    """Read and validate ``path``; None gives the built-in defaults."""
    if path is None:
        settings = Settings()
    else:
        data = _read_toml(path)
        settings = settings_from_dict(data, str(path)).model_copy(update={"source": path})
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        agent = settings.agent.model_copy(update={"data_dir": Path(override)})
        settings = settings.model_copy(update={"agent": agent})
    return settings


def read_token_file(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        # Missing, unreadable or not a file: as if there were none (the caller says what's next).
        return None


def find_config(explicit: Path | None) -> Path | None:
    """--config, then $PROVSYNC_CONFIG, then ./etc/provsync.toml, /etc/provsync/provsync.toml."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(ENV_CONFIG)
    if from_env:
        return Path(from_env)
    for candidate in SEARCH_PATHS:
        if candidate.is_file():
            return candidate
    return None


def default_document(*, token: str | None = None, data_dir: str = "var") -> dict[str, Any]:
    """A complete configuration with every default, as written by ``config init``."""
    settings = Settings(
        agent=AgentSettings(data_dir=Path(data_dir)),
        api=ApiSettings(token=token if token is not None else secrets.token_urlsafe(32)),
        exporters=ExporterSettings(
            file=(FileExporterSettings(path=Path("notifications.jsonl"), name="jsonl"),)
        ),
    )
    document = settings.model_dump(mode="json", exclude={"source"})
    # Secrets dump as "**********"; the example community is written in the clear.
    document["snmp"]["communities"] = [{"name": "public"}]
    document["alarm_types"] = [
        {
            "id": "site-ups-on-battery",
            "name": "UPS On Battery",
            "kind": "alarm",
            "severity": "major",
            "event_type": "equipmentAlarm",
            "probable_cause": "powerProblem",
            "description": "Example of a site alarm type raised by a local script.",
            "clear_instructions": "Restore mains power.",
            "resolution": "",
        }
    ]
    result: dict[str, Any] = _drop_none(document)
    return result


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
