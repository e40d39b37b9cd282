"""What the repositories share: JSON columns and the id of an inserted row.

Objects are JSON text on disk and dicts in the repositories' dataclasses; an absent
object is None.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import CursorResult

Data = dict[str, Any]
"""An object's data (a user, a station...): what the element and the hub exchange."""
Key = tuple[str, str]
"""An object's (class, key)."""


def dumps(data: Data | None) -> str | None:
    return None if data is None else json.dumps(data, sort_keys=True)


def loads(text: str | None) -> Data | None:
    return None if text is None else dict(json.loads(text))


def inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an insert returns its primary key"
    return int(key[0])
