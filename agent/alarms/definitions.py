"""What an alarm or event type is: one row of the alarm inventory (agent.alarms.catalog)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from agent.alarms.severity import Severity


class Kind(StrEnum):
    ALARM = "alarm"  # stateful: raised, changed, cleared
    EVENT = "event"  # stateless: one notification


class EventType(StrEnum):
    """ITU-T X.733 event types (IANAItuEventType names)."""

    OTHER = "other"
    COMMUNICATIONS_ALARM = "communicationsAlarm"
    QUALITY_OF_SERVICE_ALARM = "qualityOfServiceAlarm"
    PROCESSING_ERROR_ALARM = "processingErrorAlarm"
    EQUIPMENT_ALARM = "equipmentAlarm"
    ENVIRONMENTAL_ALARM = "environmentalAlarm"
    INTEGRITY_VIOLATION = "integrityViolation"
    OPERATIONAL_VIOLATION = "operationalViolation"
    PHYSICAL_VIOLATION = "physicalViolation"
    SECURITY_SERVICE_OR_MECHANISM_VIOLATION = "securityServiceOrMechanismViolation"
    TIME_DOMAIN_VIOLATION = "timeDomainViolation"


@dataclass(frozen=True, slots=True)
class VendorName:
    """What a vendor's console calls the same condition: a NOC trained on it maps the type.

    ``name`` is spelled as the vendor's document spells it (searchable there), ``product``
    is the product that shows it, ``document`` the document's title.
    """

    name: str
    product: str
    document: str


MICOLLAB = "MiCollab"
FTP_DOCUMENT = "Flow Through Provisioning - Events and Alarms"
"""The events and alarms of MiCollab's flow-through provisioning (sharing with MiVoice
Business call servers, NuPoint UM messaging), as its server manager shows them."""
SYSTEM_MANAGER = "System Manager"
SMGR_DOCUMENT = "Communication Manager, Messaging data, and IP Office synchronization"
"""System Manager's synchronization: it names the operations (its sync jobs), not alarms."""


def micollab(name: str) -> VendorName:
    return VendorName(name, MICOLLAB, FTP_DOCUMENT)


def system_manager(name: str) -> VendorName:
    return VendorName(name, SYSTEM_MANAGER, SMGR_DOCUMENT)


@dataclass(frozen=True, slots=True)
class AlarmType:
    """One row of the alarm inventory."""

    id: str
    name: str
    kind: Kind
    severity: Severity
    event_type: EventType
    probable_cause: str
    description: str
    clear_instructions: str
    resolution: str = ""
    """The CLI command and the control API route that fix the condition, "CLI | METHOD route"
    ({resource} is filled in)."""
    builtin: bool = True
    vendor: VendorName | None = None
    """The vendor's name for the type; None: no vendor counterpart (provsync's own types,
    the site's)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # vendor: a dict, or None
        data["kind"] = self.kind.value
        data["severity"] = self.severity.value
        data["event_type"] = self.event_type.value
        return data
