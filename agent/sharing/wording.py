"""Counts in the texts of sharing's alarms, events and CLI output, with nouns that agree.

"1 shared update was rejected", "2 shared updates were rejected": a text built around a
count reads wrong at one otherwise, and operators read these in alarm lists.
"""

from __future__ import annotations


def counted(count: int, singular: str, plural: str = "") -> str:
    """``count`` and the noun that agrees with it (``plural`` defaults to singular + s)."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def agreeing(count: int, singular: str, plural: str) -> str:
    """The word that agrees with ``count`` (a verb: "was" or "were", "has" or "have")."""
    return singular if count == 1 else plural
