"""The element types as the CLI offers them, each with the vendors' products it stands for
(a NOC knows its equipment by product, the agent by type)."""

from __future__ import annotations

from enum import StrEnum

from agent.store.element_types import (
    CALL_SERVER,
    DEFAULT_ELEMENT_TYPE,
    ELEMENT_TYPES,
    MESSAGING,
    SMALL_OFFICE,
)

PRODUCTS: dict[str, tuple[str, ...]] = {
    CALL_SERVER: ("Communication Manager", "MiVoice Business"),
    SMALL_OFFICE: ("IP Office",),
    MESSAGING: (
        "Messaging",
        "Communication Manager Messaging",
        "Modular Messaging",
        "NuPoint UM",
    ),
}
"""What each type stands for among the products the vendors' documents name (System
Manager's sync of Communication Manager, IP Office and messaging; MiCollab's sharing with
MiVoice Business and NuPoint UM); docs/control-api.md lists the same."""


class ElementType(StrEnum):
    """``--type``: the CLI refuses anything else as bad usage, naming these."""

    CALL_SERVER = CALL_SERVER
    SMALL_OFFICE = SMALL_OFFICE
    MESSAGING = MESSAGING


DEFAULT_TYPE = ElementType(DEFAULT_ELEMENT_TYPE)

TYPE_HELP = "Element type: " + "; ".join(
    f"{kind} = {' / '.join(PRODUCTS[kind])}" for kind in ELEMENT_TYPES
)
"""``--type`` help: "call-server = Communication Manager / MiVoice Business; ..."."""
