"""The alarms about reaching an element, as a sync's outcome keeps them.

Which alarms those are, and the one a refused login raises, is agent.alarms.contact
(sharing keeps them the same way). A sync that got through clears them all; a failed
one clears what it disproves (contact worked unless unreachable, credentials passed
unless refused) and raises the one it proves.
"""

from __future__ import annotations

import contextlib

from agent.alarms.contact import CONTACT_ALARMS, auth_alarm
from agent.alarms.manager import AlarmManager
from agent.errors import AuthIncorrect, AuthMissing, ElementUnreachable, ProvsyncError
from agent.store.elements import Element


class ContactAlarms:
    def __init__(self, manager: AlarmManager) -> None:
        self.manager = manager

    async def clear(self, type_id: str, resource: str, qualifier: str = "") -> None:
        """Clear the alarm if it is active (an inactive one is no error here)."""
        with contextlib.suppress(ProvsyncError):
            await self.manager.clear(type_id=type_id, resource=resource, qualifier=qualifier)

    async def reached(self, element: Element) -> None:
        """A sync of ``element`` got through: nothing stands between the hub and it."""
        for type_id in CONTACT_ALARMS:
            await self.clear(type_id, element.name)

    async def failed(self, element: Element, exc: BaseException) -> None:
        """A sync of ``element`` failed with ``exc``: what it disproves cleared, what it
        proves (unreachable, a refused login) raised."""
        if not isinstance(exc, ElementUnreachable):
            await self.clear("element-unreachable", element.name)
        if not isinstance(exc, AuthMissing):
            await self.clear("auth-failed-missing", element.name)
        if not isinstance(exc, AuthIncorrect):
            await self.clear("auth-failed-incorrect", element.name)
        refused = auth_alarm(exc, element.address)
        if refused is not None:
            await self.manager.raise_alarm(refused[0], element.name, text=refused[1])
        elif isinstance(exc, ElementUnreachable):
            await self.manager.raise_alarm("element-unreachable", element.name, text=str(exc))
