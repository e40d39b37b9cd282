"""The [snmp] section: the responder, its communities and USM users, trap and inform targets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.alarms.severity import Severity
from agent.config.exporters import NOTIFICATION_KINDS
from agent.config.values import Duration, Section, check_unique, parse_address, within
from agent.inform_bounds import MAX_INFORM_WAIT, v2c_inform_wait, v3_inform_deadline
from agent.oids import check_enterprise_root, parse_oid

AUTH_PROTOCOLS = ("none", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("none", "AES-128")


class SnmpCommunity(Section):
    """A read-only SNMPv1/v2c community. The name is a credential: never logged."""

    name: SecretStr

    @field_validator("name")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("a community name cannot be empty")
        return value


class SnmpUser(Section):
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


class SnmpTarget(Section):
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


class SnmpSettings(Section):
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
