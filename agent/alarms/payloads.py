"""The payload of an alarm's log row: what exporters need beyond the columns.

Encoded once per transition on the writer thread, so its cost is the cost of every raise:
the JSON and the same payload as a dict (for the commit feed and the log tail) are
memoized, and the part the alarm type decides is encoded once per type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from agent.alarms.catalog import Catalog

Payload = tuple[str, dict[str, Any]]
"""The payload's JSON and the same payload as a dict."""

_MEMO_MAX = 4096


def utc(value: datetime) -> datetime:
    """``value`` as the store returns it: in UTC (the same instant; iso() then says Z)."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


class PayloadEncoder:
    """Encodes alarm payloads for one catalog; used by the writer thread only."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # Payload JSON and the same payload parsed (for the feed), memoized: few distinct.
        self._payloads: dict[tuple[Any, ...], Payload] = {}
        # Type id -> the payload JSON's fixed start, up to the count (see _json).
        self._heads: dict[str, str] = {}

    def encode(self, row: Mapping[str, Any]) -> Payload:
        """The JSON of what exporters need beyond the columns, and the same as a dict;
        memoized (few distinct, unless the resolution names the resource)."""
        # Who acknowledged travels with every later notification of the alarm (SNMP's
        # provsyncNotifyAckBy, syslog), not only with the acknowledgement itself.
        ack_by = row.get("ack_by") if row["operator_state"] == "acknowledged" else None
        key = (row["type_id"], row["count"], row["operator_state"], row["resolution"], ack_by)
        cached = self._payloads.get(key)
        if cached is None:
            alarm_type = self.catalog.describe(row["type_id"])
            # Built from the values, not parsed back from the JSON (str and int values:
            # equal either way): the strings are shared with the catalog and the row
            # instead of a fresh copy each, which the log tail keeps for many rows.
            parsed = {
                "type_name": alarm_type.name,
                "event_type": alarm_type.event_type.value,
                "probable_cause": alarm_type.probable_cause,
                "count": row["count"],
                "operator_state": row["operator_state"],
                "resolution": row["resolution"],
            }
            if ack_by is not None:
                parsed["ack_by"] = ack_by
            cached = (self._json(row["type_id"], parsed), parsed)
            if len(self._payloads) > _MEMO_MAX:
                self._payloads.clear()
            self._payloads[key] = cached
        return cached

    def _json(self, type_id: str, parsed: dict[str, Any]) -> str:
        """``json.dumps(parsed, separators=(",", ":"))``, with the part the type decides
        encoded once per type: the resolution usually names the resource, so most raises
        miss the memo, and json.dumps (a new encoder each call) cost more per raise than
        the rest of its log row."""
        count, state, resolution = parsed["count"], parsed["operator_state"], parsed["resolution"]
        if (
            type(count) is not int
            or type(state) is not str
            or type(resolution) is not str
            or "ack_by" in parsed
        ):
            return json.dumps(parsed, separators=(",", ":"))
        head = self._heads.get(type_id)
        if head is None:
            fixed = {k: parsed[k] for k in ("type_name", "event_type", "probable_cause")}
            head = json.dumps(fixed, separators=(",", ":"))[:-1] + ',"count":'
            self._heads[type_id] = head
        return (
            f'{head}{count},"operator_state":{_json_string(state)},'
            f'"resolution":{_json_string(resolution)}}}'
        )
