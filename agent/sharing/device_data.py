"""Device data: the phones' full details from the elements the hub is registered with.

A start of sharing registers the hub for device-data notifications with the element and
takes its phones as they are; notifications then keep them current; an operator's
device-data sync reads them again from the sharing group (the elements that share, and
those the hub is registered with), not from every registered element. A directory
number without details is listed as number only; one several elements report is
credited to the element that hosts it (:func:`host`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from loguru import logger

from agent.alarms.ports import AlarmSink
from agent.connectors.connections import ElementConnections
from agent.errors import InvalidRequest, ProvsyncError, SharingError
from agent.sharing.sink import HUB
from agent.sharing.tasks import Tasks
from agent.sharing.wording import counted
from agent.store.access import StoreAccess
from agent.store.element_types import MESSAGING
from agent.store.elements import Element
from agent.store.rows import Data


class DeviceData:
    """Registrations, notifications and syncs of device data.

    Args:
        store: the device details, the elements, the hub's directory numbers.
        alarms: the device-data events.
        connections: opens the elements' connectors.
        tasks: where registrations and syncs run.
        page_size: [sync] page_size, of the station reads.
    """

    def __init__(
        self,
        store: StoreAccess,
        alarms: AlarmSink,
        connections: ElementConnections,
        tasks: Tasks,
        page_size: int,
    ) -> None:
        self._store = store
        self._alarms = alarms
        self._connections = connections
        self._tasks = tasks
        self._page_size = page_size

    async def start(self, elements: list[Element]) -> None:
        """At start: announce the registrations, if there is any."""
        if any(e.sharing and e.device_data for e in elements):
            self._tasks.spawn(self._announce(), "device-data")

    def register(self, element: Element) -> None:
        """``element`` started sharing: register with it (in the background)."""
        self._tasks.spawn(self._register(element.id), f"device-data:{element.name}")

    async def _register(self, element_id: int) -> None:
        """Register for notifications, then take the element's phones as they are now."""
        element = await asyncio.to_thread(self._store.elements.by_id, element_id)
        if element is None:
            return
        try:
            async with await self._connections.open(element) as connector:
                await connector.register_device_data()
            stations = await self._stations(element)
        except ProvsyncError as exc:
            logger.warning("could not register with {} for device data: {}", element.name, exc)
            return
        await asyncio.to_thread(self._store.devices.store, element.id, stations, replace=True)
        await asyncio.to_thread(self._store.elements.set_state, element.id, device_data=True)
        await self._announce()

    async def _stations(self, element: Element) -> list[tuple[str, Data | None]]:
        stations: list[tuple[str, Data | None]] = []
        async with await self._connections.open(element) as connector:
            async for page in connector.pages("station", limit=self._page_size):
                stations += [(o.key, o.data) for o in page.objects]
        return stations

    async def _announce(self) -> None:
        elements = await asyncio.to_thread(self._store.elements.all)
        names = [e.name for e in elements if e.sharing and e.device_data]
        await self._alarms.emit_event(
            "device-data-notification",
            HUB,
            details={"elements": names},
            text="the hub is registered for device data with "
            + (", ".join(names) if names else "no element")
            + ": phones on them have full details, others only a directory number",
        )

    async def notification(self, ident: str, devices: list[dict[str, Any]]) -> int:
        """An element's notification of changed devices; returns how many were stored."""
        element = await asyncio.to_thread(self._store.elements.find, ident)
        if not element.device_data:
            raise SharingError(f"the hub is not registered with {element.name} for device data")
        items = []
        for device in devices:
            number, data = str(device.get("number", "")), device.get("data")
            if not number or not (data is None or isinstance(data, dict)):
                raise InvalidRequest("each device needs a number and data (an object or null)")
            items.append((number, data))
        return await asyncio.to_thread(self._store.devices.store, element.id, items)

    def sync(self) -> None:
        """Read every element's phones again (in the background)."""
        self._tasks.spawn(self._sync(), "device-data-sync")

    async def _sync(self) -> None:
        elements = [
            e
            for e in await asyncio.to_thread(self._store.elements.all)
            if in_group(e) and e.type != MESSAGING
        ]
        await self._alarms.emit_event(
            "device-data-sync-started",
            HUB,
            details={"elements": [e.name for e in elements]},
            text=f"device-data sync with {counted(len(elements), 'element')} started",
        )
        counts: dict[str, int | str] = {}
        for element in elements:
            try:
                stations = await self._stations(element)
                counts[element.name] = await asyncio.to_thread(
                    self._store.devices.store, element.id, stations, replace=True
                )
            except ProvsyncError as exc:
                counts[element.name] = f"failed: {exc}"
        await self._alarms.emit_event(
            "device-data-sync-completed",
            HUB,
            details=counts,
            text="device-data sync completed: "
            + ", ".join(f"{name} {count}" for name, count in counts.items()),
        )

    async def listed(self) -> list[dict[str, Any]]:
        """Every directory number of the hub: with its phone's details where known, from
        the element that hosts the phone."""
        numbers = await asyncio.to_thread(self._store.shared.load, ["directory-number"])
        reported = await asyncio.to_thread(self._store.devices.reported)
        origins = await asyncio.to_thread(self._station_origins)
        elements = await asyncio.to_thread(self._store.elements.all)
        names = {e.id: e.name for e in elements}
        listed: list[dict[str, Any]] = []
        for _, number in sorted(numbers):
            found = host(reported.get(number, []), names, origins.get(number, ""))
            if found is None:
                listed.append({"number": number, "full": False})
            else:
                listed.append(
                    {
                        "number": number,
                        "full": True,
                        "element": names.get(found[0], ""),
                        "details": found[1],
                    }
                )
        return listed

    def _station_origins(self) -> dict[str, str]:
        """Per shared station: the element whose change put it on the hub (or "hub")."""
        origins: dict[str, str] = {}
        after: str | None = None
        while True:
            page = self._store.shared.page("station", after=after, limit=5000)
            origins.update((o.key, o.origin) for o in page)
            if len(page) < 5000:
                return origins
            after = page[-1].key


def in_group(element: Element) -> bool:
    """The element belongs to the sharing group: it shares, or sends device data."""
    return element.sharing or element.device_data


def host(
    reports: list[tuple[int, Data, datetime]], names: dict[int, str], origin: str
) -> tuple[int, Data] | None:
    """Which element's details of a phone to show when several report it.

    Shared stations are held by every element of the group, but a phone is hosted by one:
    the one whose change put the station on the hub (its origin), else the one that
    reported it last (a notification comes from where the phone changed); ties by name.
    """
    if not reports:
        return None
    for element_id, data, _ in reports:
        if names.get(element_id) == origin:
            return element_id, data
    by_name = sorted(reports, key=lambda r: names.get(r[0], ""))
    newest = max(by_name, key=lambda r: r[2])  # the first of the newest: ties by name
    return newest[0], newest[1]
