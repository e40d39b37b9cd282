"""The alarms distribution raises: distribution-errors per element, and the contact
alarms (refused credentials, element-unreachable) as a sync raises them."""

from __future__ import annotations

import asyncio

from agent.alarms.contact import CONTACT_ALARMS, auth_alarm
from agent.alarms.ports import AlarmSink
from agent.errors import ConnectorError
from agent.sharing.sink import clear_if_active
from agent.sharing.wording import agreeing, counted
from agent.store.access import StoreAccess
from agent.store.elements import Element

UNREACHABLE_AFTER = 3
"""Failed sending rounds in a row (with backoff between) before element-unreachable."""


class DistributionAlarms:
    """Keeps each sharing element's distribution-errors alarm equal to its failed count.

    Args:
        store: the failed distributions (count, latest error).
        alarms: where they are raised and cleared.
        errors_major_at: [sharing] errors_major_at, the count from which it is major
            (0: never).
    """

    def __init__(self, store: StoreAccess, alarms: AlarmSink, errors_major_at: int) -> None:
        self._store = store
        self._alarms = alarms
        self._major_at = errors_major_at
        self._errors: dict[int, int] = {}
        """The failed count each element's alarm shows."""

    async def start(self, elements: list[Element]) -> None:
        """At start: the alarm of each sharing element from its count in the store."""
        for element in elements:
            if element.sharing:
                self._errors[element.id] = -1  # unknown: the first refresh decides
                await self.refresh(element.id, element.name)

    async def refresh(self, element_id: int, name: str) -> None:
        """After rejections or operator changes: raise, change or clear the alarm."""
        admin = self._store.distribution_admin
        errors = await asyncio.to_thread(admin.failed_count, element_id)
        if errors == 0:
            await clear_if_active(
                self._alarms,
                "distribution-errors",
                name,
                note="every failed distribution was retried or deleted",
            )
        elif errors != self._errors.get(element_id) or not self._alarms.is_active(
            "distribution-errors", name
        ):
            last = await asyncio.to_thread(admin.last_error, element_id)
            latest = f"{last.op} {last.cls} {last.key}: {last.error}" if last is not None else ""
            # Minor like the vendor's SDS Distribution Errors unless the site opted in.
            severity = "major" if 0 < self._major_at <= errors else "minor"
            await self._alarms.raise_alarm(
                "distribution-errors",
                name,
                severity=severity,
                text=f"{counted(errors, 'shared update')} to {name} "
                f"{agreeing(errors, 'was', 'were')} rejected; latest: {latest}",
            )
        self._errors[element_id] = errors

    async def contact(self, element: Element, error: ConnectorError | None, failures: int) -> None:
        """Contact alarms from distribution, as a sync raises them (next contact clears)."""
        name = element.name
        if error is None:
            for type_id in CONTACT_ALARMS:
                await clear_if_active(
                    self._alarms, type_id, name, note="distribution reached the element"
                )
            return
        refused = auth_alarm(error, element.address)
        if refused is not None:
            if not self._alarms.is_active(refused[0], name):
                await self._alarms.raise_alarm(refused[0], name, text=refused[1])
        elif failures >= UNREACHABLE_AFTER and not self._alarms.is_active(
            "element-unreachable", name
        ):
            await self._alarms.raise_alarm(
                "element-unreachable",
                name,
                text=f"distribution to {name} failed {failures} times in a row: {error}",
            )
