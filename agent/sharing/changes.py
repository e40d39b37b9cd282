"""A change of the hub's shared data as a push or an operator sends it, checked."""

from __future__ import annotations

from agent.errors import InvalidRequest
from agent.store.shared_data import Change

OPS = ("create", "update", "delete")


def checked_change(classes: tuple[str, ...], cls: str, key: str, op: str, data: object) -> Change:
    """The change, if it names a shared class, a key, an op and (but for a delete) data.

    Raises:
        InvalidRequest: it does not.
    """
    if cls not in classes:
        raise InvalidRequest(f"{cls!r} is not a shared class ({', '.join(classes)})")
    if not key or len(key) > 128:
        raise InvalidRequest("key must be 1 to 128 characters")
    if op not in OPS:
        raise InvalidRequest(f"op must be one of {', '.join(OPS)}")
    if op == "delete":
        return Change(cls, key, op, None)
    if not isinstance(data, dict):
        raise InvalidRequest(f"{op} of {cls} {key} needs data (an object)")
    return Change(cls, key, op, data)
