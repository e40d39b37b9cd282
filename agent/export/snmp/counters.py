"""The standard counters, from what each stage counted and what pysnmp's engine did.

Each stage counts in a plain dict of its own under the names below: the listener (every
datagram), the screens and the fast path (drops by reason, agent.export.snmp.drops),
the inform socket (its drops, under :data:`INFORM_SOCKET`). pysnmp counts the v3
messages the screen handed over, and its own: reports, decryption, time windows.
:class:`Counts` adds them up, once per datagram, for the regions of
agent.export.snmp.standard, and reads the snmpEngine values from pysnmp's engine so a
manager's timeliness checks and these values cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.export.snmp.drops import Drop

INFORM_SOCKET = "inform_socket."
"""Prefix of the drops counted at the inform socket (agent.export.snmp.inform_socket)."""
DATAGRAMS = "datagrams"
"""Every datagram the listeners received (the service's counters)."""
TO_ENGINE = "v3_to_engine"
"""v3 datagrams the screen handed to pysnmp, which counts them itself."""
SET_REFUSED = "set_refused"
"""v1/v2c SETs refused (the fast path's counters): snmpInBadCommunityUses."""

# The pysnmp counters read, by (module, name): each stage counts only what it saw.
_PYSNMP = {
    "in": ("__SNMPv2-MIB", "snmpInPkts"),
    "bad_versions": ("__SNMPv2-MIB", "snmpInBadVersions"),
    "parse_errors": ("__SNMPv2-MIB", "snmpInASNParseErrs"),
    "silent_drops": ("__SNMPv2-MIB", "snmpSilentDrops"),
    "unknown_security_models": ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels"),
    "invalid_msgs": ("__SNMP-MPD-MIB", "snmpInvalidMsgs"),
    "unknown_pdu_handlers": ("__SNMP-MPD-MIB", "snmpUnknownPDUHandlers"),
    "unsupported_sec_levels": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"),
    "not_in_time_windows": ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows"),
    "unknown_user_names": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
    "unknown_engine_ids": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs"),
    "wrong_digests": ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
    "decryption_errors": ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
}
_ENGINE = (
    "__SNMP-FRAMEWORK-MIB",
    ("snmpEngineID", "snmpEngineBoots", "snmpEngineTime", "snmpEngineMaxMessageSize"),
)


class Counts:
    """The standard counters, from the agent's own counts and pysnmp's.

    Args:
        own: the count mappings of the listener, the screen and the fast path (read at
            each request: they are live dicts).
    """

    def __init__(self, own: Iterable[Mapping[str, int]]) -> None:
        self._own = tuple(own)
        self._pysnmp: dict[str, Any] = {}
        self._engine: tuple[Any, ...] = ()

    def attach(self, snmp_engine: Any) -> None:
        """Read pysnmp's counters and engine values from now on (at start)."""
        builder = snmp_engine.get_mib_builder()
        for key, (module, name) in _PYSNMP.items():
            (self._pysnmp[key],) = builder.import_symbols(module, name)
        module, names = _ENGINE
        self._engine = tuple(builder.import_symbols(module, *names))

    def own(self, key: str) -> int:
        return sum(counts.get(key, 0) for counts in self._own)

    def _both(self, drop: Drop) -> int:
        """A drop reason counted at the listeners and at the inform socket."""
        return self.own(drop.value) + self.own(INFORM_SOCKET + drop.value)

    def pysnmp(self, key: str) -> int:
        instance = self._pysnmp.get(key)
        return int(instance.syntax) if instance is not None else 0

    def in_packets(self) -> int:
        """snmpInPkts: every datagram at the listeners and the inform socket."""
        inform_drops = sum(
            value
            for counts in self._own
            for key, value in counts.items()
            if key.startswith(INFORM_SOCKET)
        )
        # pysnmp counts the v3 ones the listeners handed over, and the inform socket's
        # that passed its screen; the listeners counted the former already.
        from_inform_socket = max(0, self.pysnmp("in") - self.own(TO_ENGINE))
        return self.own(DATAGRAMS) + from_inform_socket + inform_drops

    def bad_versions(self) -> int:
        return self._both(Drop.BAD_VERSION) + self.pysnmp("bad_versions")

    def parse_errors(self) -> int:
        return (
            self.own(Drop.PARSE_ERROR.value)
            + self._both(Drop.V3_PARSE_ERROR)
            + self.pysnmp("parse_errors")
        )

    def unknown_pdu_handlers(self) -> int:
        return self._both(Drop.UNEXPECTED_PDU) + self.pysnmp("unknown_pdu_handlers")

    def usm(self, drop: Drop | None, key: str) -> int:
        return (self._both(drop) if drop is not None else 0) + self.pysnmp(key)

    # ------------------------------------------------------------------ snmpEngine
    def engine_id(self) -> bytes:
        return bytes(self._engine[0].syntax) if self._engine else b""

    def engine_boots(self) -> int:
        return int(self._engine[1].syntax) if self._engine else 0

    def engine_time(self) -> int:
        """Seconds since boots last changed, by the clock pysnmp's USM uses for
        timeliness (its snmpEngineTime instance computes it when cloned)."""
        return max(0, int(self._engine[2].syntax.clone())) if self._engine else 0

    def max_message_size(self) -> int:
        return int(self._engine[3].syntax) if self._engine else 484
