"""Which changes of an element's log ask for an initialization (``[sync] full_init_objects``)."""

from __future__ import annotations

from collections.abc import Iterable


class FullInitObjects:
    """Matches a change's class and key against the configured entries."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._classes: set[str] = set()
        self._objects: set[tuple[str, str]] = set()
        for entry in entries:
            cls, sep, key = entry.partition(":")
            if sep:
                self._objects.add((cls, key))
            else:
                self._classes.add(cls)

    def __contains__(self, object_id: tuple[str, str]) -> bool:
        return object_id[0] in self._classes or object_id in self._objects
