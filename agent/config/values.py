"""The building blocks every section shares.

Addresses (``host:port``), the ``Duration`` type with the per-key ranges of :func:`within`,
the ceiling of count settings, the uniqueness and backoff checks, and the frozen,
extra-keys-forbidden base model of every section.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from agent.durations import format_duration, parse_duration


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


class Section(BaseModel):
    """The base of every section: frozen, and a key it does not know is an error (a typo
    must not silently leave a default in force)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
