"""Which alarms are about reaching an element, and the one a refused login raises.

Both the sync engine and sharing talk to elements and keep these alarms the same way:
any contact that gets through clears them all, a refused login raises its own.
"""

from __future__ import annotations

from agent.errors import AuthIncorrect, AuthMissing

CONTACT_ALARMS = ("element-unreachable", "auth-failed-incorrect", "auth-failed-missing")
"""Alarms about reaching an element: any contact that gets through clears them."""


def auth_alarm(exc: BaseException, address: str) -> tuple[str, str] | None:
    """The alarm type and text for a refused login, None for any other error."""
    if isinstance(exc, AuthMissing):
        return "auth-failed-missing", (
            f"Authentication Failed for {address} - username/password not provided"
        )
    if isinstance(exc, AuthIncorrect):
        return "auth-failed-incorrect", (
            f"Authentication Failed for {address} - incorrect username/password"
        )
    return None
