"""The alarms about reaching an element, as a sync's outcome keeps them.

Which alarms those are, and the one a refused login raises, is agent.alarms.contact
(sharing keeps them the same way). A sync that got through clears them all; a failed
one clears what it disproves (contact worked unless unreachable, credentials passed
unless refused) and raises the one it proves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from agent.alarms.contact import CONTACT_ALARMS, auth_alarm
from agent.alarms.manager import AlarmManager
from agent.connectors.base import Connector
from agent.errors import (
    AuthError,
    AuthIncorrect,
    AuthMissing,
    ConnectorError,
    ElementUnreachable,
    ProvsyncError,
)
from agent.store.elements import Element


async def login_test(
    open_connector: Callable[[], Awaitable[Connector]], timeout: float
) -> ConnectorError | None:
    """Log in to an element once (it is asked for its info): the error, None if it passed.

    Bounded by ``timeout`` as a whole: an element that takes the connection and never
    answers is unreachable, it does not hold the caller (an operator saving credentials).
    """
    try:
        async with asyncio.timeout(timeout):
            async with await open_connector() as connector:
                await connector.info()
    except TimeoutError:
        return ElementUnreachable(f"no answer within {timeout:g} s")
    except ConnectorError as exc:
        return exc
    return None


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

    async def tested(self, element: Element, exc: ConnectorError | None) -> str:
        """The outcome of a login test of new credentials: the alarms it proves or
        disproves, and the outcome in words.

        Passed (or answered past the login): every contact alarm clears. Refused: the
        refusal's alarm is raised, the other cleared. No answer: element-unreachable is
        raised and the authentication alarms stay, since nothing disproved them.
        """
        name = element.name
        if isinstance(exc, AuthError):
            await self.failed(element, exc)
            return f"the credentials were refused by {name}: {exc}"
        if isinstance(exc, ElementUnreachable):
            await self.manager.raise_alarm(
                "element-unreachable",
                name,
                text=f"the new credentials of {name} could not be tested: {exc}",
            )
            return f"the credentials could not be tested, {name} did not answer: {exc}"
        await self.reached(element)
        return f"the credentials were accepted by {name}"
