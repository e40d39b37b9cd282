"""The key -> id map of every active alarm, kept by the alarm manager's writer.

It is consulted for every raise and clear by key (which alarm, if any, a request touches
before the store is read) and lives for the life of the agent, so with 100,000 active
alarms its size per alarm matters. A flat ``dict[tuple[str, str, str], int]`` loaded from
the store costs about 276 bytes an alarm (tracemalloc, 100,000 keys with 19-character
resources): a 3-tuple, a type id string of its own per row (the driver returns a fresh
string each time), the resource string, the id and the dict slot. Nested by type, the
type id is kept once per type (there are few), and the inner key is the resource string
itself when the qualifier is empty (nearly every alarm) or a (resource, qualifier) pair:
no tuple and no type string per alarm, 138 bytes an alarm measured alike. The two inner
key forms cannot collide (a string never equals a tuple).

The writer thread is the only one that changes it; readers on other threads (is_active,
keys_of) only use single dict operations and copies, which the GIL keeps consistent.
"""

from __future__ import annotations

from collections.abc import Iterable

Key = tuple[str, str, str]
"""(type id, resource, qualifier), as the manager's requests name an alarm."""

_Inner = str | tuple[str, str]


def _inner(resource: str, qualifier: str) -> _Inner:
    return resource if not qualifier else (resource, qualifier)


class ActiveKeys:
    """Key (type, resource, qualifier) -> id of every active alarm."""

    __slots__ = ("_by_type", "_count")

    def __init__(self, rows: Iterable[tuple[str, str, str, int]] = ()) -> None:
        self._by_type: dict[str, dict[_Inner, int]] = {}
        self._count = 0
        for type_id, resource, qualifier, alarm_id in rows:
            self.set((type_id, resource, qualifier), alarm_id)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: Key) -> bool:
        return self.get(key) is not None

    def get(self, key: Key) -> int | None:
        inner = self._by_type.get(key[0])
        if inner is None:
            return None
        return inner.get(_inner(key[1], key[2]))

    def set(self, key: Key, alarm_id: int) -> None:
        inner = self._by_type.get(key[0])
        if inner is None:
            inner = self._by_type[key[0]] = {}
        slot = _inner(key[1], key[2])
        if slot not in inner:
            self._count += 1
        inner[slot] = alarm_id

    def discard(self, key: Key, alarm_id: int) -> None:
        """Forget ``key`` if it still names ``alarm_id`` (a clear after a new raise of the
        same key in one group commit must not forget the new one)."""
        inner = self._by_type.get(key[0])
        if inner is None:
            return
        slot = _inner(key[1], key[2])
        if inner.get(slot) == alarm_id:
            del inner[slot]
            self._count -= 1

    def keys_of(self, type_id: str) -> list[Key]:
        """The keys of one type's active alarms (a copy: the writer changes the map)."""
        inner = self._by_type.get(type_id)
        if not inner:
            return []
        keys: list[Key] = []
        for slot in list(inner):
            if isinstance(slot, str):
                keys.append((type_id, slot, ""))
            else:
                keys.append((type_id, slot[0], slot[1]))
        return keys


__all__ = ["ActiveKeys", "Key"]
