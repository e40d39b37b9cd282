"""The objects whose change asks for an initialization sync (``[sync] full_init_objects``).

The default is the list of the synchronization document ("If there is a update in any of
the following Communication Manager objects ... you must start full initialization
synchronization"): eight system-parameter forms by name, and every dial plan, cabinet and
board. An entry is a class (every object of it) or ``class:key`` (one object).
"""

from __future__ import annotations

import re

FULL_INIT_OBJECTS: tuple[str, ...] = (
    "system-parameter:special-applications",
    "system-parameter:features",
    "system-parameter:cdr",
    "system-parameter:cust",
    "system-parameter:spec",
    "system-parameter:security",
    "system-parameter:country-options",
    "system-parameter:maintenance",
    "dial-plan",
    "cabinet",
    "board",
)

_ENTRY = re.compile(r"[a-z][a-z0-9-]{0,63}(:[^\s:]{1,128})?")


def check_full_init_entry(entry: str) -> None:
    """Raise ValueError (pydantic names the key) for an entry that is neither form."""
    if not _ENTRY.fullmatch(entry):
        raise ValueError(
            f"{entry!r} is not an object class (e.g. 'board') or class:key "
            "(e.g. 'system-parameter:features')"
        )
