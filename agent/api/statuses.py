"""The HTTP status of each ProvsyncError: the error answers of the app and the results of
the batch route (which answers each refused operation with the status the single route
would have had)."""

from __future__ import annotations

from agent.errors import (
    AlarmNotFound,
    ConfigError,
    ElementNotFound,
    InvalidRequest,
    JobNotFound,
    NotifyRefused,
    ObjectNotFound,
    ProvsyncError,
    SharingError,
    UnknownAlarmType,
)

# Most specific first; any other ProvsyncError means the store could not do it (503).
_STATUS_OF: tuple[tuple[type[ProvsyncError], int], ...] = (
    (UnknownAlarmType, 400),
    (AlarmNotFound, 404),
    (ElementNotFound, 404),
    (JobNotFound, 404),
    (InvalidRequest, 400),
    (ConfigError, 400),
    (SharingError, 409),
    (NotifyRefused, 409),
    (ObjectNotFound, 404),
)


def status_of(exc: ProvsyncError) -> int:
    """The HTTP status answering ``exc`` (an overloaded writer's 503 included)."""
    return next((s for t, s in _STATUS_OF if isinstance(exc, t)), 503)
