"""Counting the SNMP datagrams the agent drops, by reason, with rate-limited log lines.

The counts live in the mapping the owner exposes (the responder's or the service's
counters, shown under ``snmp.requests`` in ``GET /api/v1/status``), and the RFC 3418 /
RFC 3412 / RFC 3414 counters are served from them (agent.export.snmp.standard):
``parse_errors`` and ``v3_parse_errors`` count in snmpInASNParseErrs,
``bad_community_names`` in snmpInBadCommunityNames, ``bad_versions`` in snmpInBadVersions,
``v3_unknown_user_names`` in usmStatsUnknownUserNames (the ones dropped; those answered
are pysnmp's to count), and so on.

A flood must not become a flood of log lines: each reason logs its first drop at once,
then at most one line per interval with the count since the previous line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from enum import StrEnum

from loguru import logger

LOG_INTERVAL = 60.0


class Drop(StrEnum):
    """Why a datagram got no answer; the value is the counter's key."""

    OVERSIZED = "oversized"
    """Longer than the agent accepts (:data:`agent.export.snmp.screen.MAX_MESSAGE_SIZE`)."""
    PARSE_ERROR = "parse_errors"
    """v1/v2c or not SNMP at all: BER the agent does not accept."""
    BAD_VERSION = "bad_versions"
    BAD_COMMUNITY = "bad_community_names"
    UNEXPECTED_PDU = "unexpected_pdus"
    V3_PARSE_ERROR = "v3_parse_errors"
    V3_UNKNOWN_SECURITY_MODEL = "v3_unknown_security_models"
    """A security model other than USM (snmpUnknownSecurityModels, RFC 3412 7.2)."""
    V3_INVALID_MSG = "v3_invalid_msgs"
    """msgFlags asking for privacy without authentication (snmpInvalidMsgs, RFC 3412 7.2)."""
    V3_UNKNOWN_USER = "v3_unknown_user_names"
    V3_TOO_MANY_VARBINDS = "v3_too_many_varbinds"
    V3_DISCOVERY_TOO_BIG = "v3_discovery_too_big"
    V3_DISCOVERY_RATE = "v3_discovery_rate"
    """Past the sender's or the global budget (agent.export.snmp.rate_limits.SenderBudget)."""
    V3_UNSUPPORTED_SEC_LEVEL = "v3_unsupported_sec_levels"
    """A known user at a level other than its configured one (usmStatsUnsupportedSecLevels),
    too big for a report or past the budget."""
    V3_UNKNOWN_ENGINE_ID = "v3_unknown_engine_ids"
    """A known user's authenticated message for another engine ID (usmStatsUnknownEngineIDs),
    too big for a report or past the budget."""
    V3_WRONG_DIGEST = "v3_wrong_digests"
    """A known user's message whose digest does not verify (usmStatsWrongDigests), too big
    for a report or past the budget."""


class DropCounter:
    """Counts drops into ``counts`` and logs them, rate-limited per reason.

    Args:
        counts: where the counts are kept (and read by the status route).
        interval: seconds between two log lines of one reason.
        clock: monotonic seconds (injected by tests).
        prefix: put before each reason's key in ``counts`` (a socket of its own).
        label: how the log line starts.
    """

    def __init__(
        self,
        counts: MutableMapping[str, int],
        *,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "",
        label: str = "SNMP datagram dropped",
    ) -> None:
        self.counts = counts
        self._prefix = prefix
        self._label = label
        self._interval = interval
        self._clock = clock
        self._logged_at: dict[Drop, float] = {}
        self._unlogged: dict[Drop, int] = {}

    def drop(self, reason: Drop, source: str | None = None, detail: str = "") -> None:
        key = self._prefix + reason.value
        self.counts[key] = self.counts.get(key, 0) + 1
        now = self._clock()
        last = self._logged_at.get(reason)
        if last is not None and now - last < self._interval:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            return
        self._logged_at[reason] = now
        since = self._unlogged.pop(reason, 0)
        # Only the reason, the peer and our own parser's words: never the datagram's
        # bytes (a community string or user name sent by mistake is a credential).
        logger.warning(
            "{} ({}) from {}{}{}",
            self._label,
            reason.value,
            source or "unknown peer",
            f": {detail}" if detail else "",
            f" ({since} more since the last line)" if since else "",
        )
