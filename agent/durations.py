"""Durations as the configuration writes them (``"90s"``, ``"5m"``, ``"24h"``) and back.

Kept below the configuration so that components that only need to print or parse a
duration (the retention log line, the CLI) do not depend on the settings schema.
"""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
DURATION_MAX = 3650 * 86400.0
"""No duration anywhere may be longer (ten years): past it timers overflow or never fire."""


def parse_duration(value: object) -> float:
    """``"90s"``, ``"5m"``, ``"24h"``, ``"7d"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '5m' or '24h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration such as '30s', '5m' or '24h', got {value!r}")
    # TOML has nan and inf floats; either would make a timer fire at once or never.
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > DURATION_MAX:
        raise ValueError(f"a duration cannot be longer than {format_duration(DURATION_MAX)}")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds in the largest unit that divides them exactly (``300.0`` -> ``"5m"``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"
