"""The [syslog] section: RFC 5424 collectors and the agent's own log sent to syslog."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from agent.alarms.severity import Severity
from agent.config.exporters import NOTIFICATION_KINDS
from agent.config.values import Duration, Section, check_unique, parse_address, within
from agent.syslog_facilities import FACILITIES

SYSLOG_PORTS = {"udp": 514, "tcp": 514, "tls": 6514, "relp": 2514}


class SyslogCollector(Section):
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


class AgentLogSyslog(Section):
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


class SyslogSettings(Section):
    facility: str = "local0"
    """One of the RFC 5424 facility names (agent.syslog_facilities)."""
    hostname: str = ""
    """HOSTNAME of the messages; empty: [agent] hostname, else this machine's FQDN."""
    max_message_size: int = Field(default=8192, ge=480, le=65000)
    """Longest message over tcp, tls and relp (octets)."""
    udp_max_message_size: int = 2048
    """Longest datagram over udp (octets): RFC 5426 section 3.2 only guarantees 480 (IPv4)
    and 1180 (IPv6), and recommends that every receiver accept 2048."""
    collectors: tuple[SyslogCollector, ...] = ()
    agent_log: AgentLogSyslog = AgentLogSyslog()

    @field_validator("facility", mode="before")
    @classmethod
    def _facility(cls, value: object) -> object:
        if not (isinstance(value, str) and value in FACILITIES):
            # Worded as pydantic words a Literal's refusal, which this field was.
            *names, last = (repr(name) for name in FACILITIES)
            raise ValueError(f"Input should be {', '.join(names)} or {last}")
        return value

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
