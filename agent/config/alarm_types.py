"""The [[alarm_types]] tables: site alarm types beside the built-in catalog."""

from __future__ import annotations

import difflib

from pydantic import Field, field_validator

from agent.alarms.catalog import BUILTIN_TYPES, EventType, Kind
from agent.alarms.probable_cause import PROBABLE_CAUSES
from agent.alarms.severity import Severity
from agent.config.values import Section

_TYPE_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"
_BUILTIN_IDS = frozenset(t.id for t in BUILTIN_TYPES)


class AlarmTypeSettings(Section):
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
