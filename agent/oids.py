"""Object identifiers as text and the enterprise root every provsync OID hangs below.

Kept below the configuration, which validates ``[snmp] enterprise_oid`` with it, and the
exporters, which all name the operator's private enterprise number (the SNMP MIB's
root, syslog's SD-ID suffix ``@PEN`` of RFC 5424 section 7.2.2).
"""

from __future__ import annotations

ENTERPRISES: tuple[int, ...] = (1, 3, 6, 1, 4, 1)
"""iso.org.dod.internet.private.enterprises (RFC 1155 section 3.1.4)."""


def parse_oid(text: str) -> tuple[int, ...]:
    """``"1.3.6.1.4.1.32473.1"`` (a leading dot is allowed) -> a tuple of arcs."""
    try:
        arcs = tuple(int(part) for part in text.strip().lstrip(".").split("."))
    except ValueError:
        raise ValueError(f"expected a dotted numeric OID, got {text!r}") from None
    if len(arcs) < 2 or any(arc < 0 or arc > 0xFFFFFFFF for arc in arcs):
        raise ValueError(f"{text!r} is not a valid OID")
    return arcs


def check_enterprise_root(root: tuple[int, ...]) -> tuple[int, ...]:
    """``root`` itself if it lies below enterprises (1.3.6.1.4.1.N...), else ValueError."""
    if root[: len(ENTERPRISES)] != ENTERPRISES or len(root) <= len(ENTERPRISES):
        raise ValueError("the MIB root must be below enterprises (1.3.6.1.4.1.N...)")
    return root


def enterprise_number(root: tuple[int, ...]) -> int:
    """The private enterprise number N of a root below 1.3.6.1.4.1.N."""
    return check_enterprise_root(root)[len(ENTERPRISES)]
