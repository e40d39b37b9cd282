"""The red banner across every console page (the vendor document: a refused start of
sharing "displays an event and red banner"; Flow Through Provisioning Inactive stops all
sharing). Each banner stays while its cause does:

- ftp-inactive: while the alarm is active;
- a refused start of sharing: while the element's newest sharing-refused event is newer
  than its newest sharing-started one and it is not sharing (an element upgraded and
  started since, or removed, takes its banner away).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from agent.alarms import queries
from agent.api.services import Services

MAX_REFUSALS = 20
"""The most refused-start banners shown at once (the newest)."""


@dataclass(frozen=True)
class Banner:
    text: str
    href: str
    label: str


def _refusals(engine: Engine, created: dict[str, datetime]) -> list[tuple[str, str]]:
    """(element, text) of each refused start still unresolved, newest first (at most
    MAX_REFUSALS); ``created``: when each element not sharing now was added."""
    newest = queries.newest_events_by_resource(engine, ("sharing-refused", "sharing-started"))
    found: list[tuple[int, str, str]] = []
    for (type_id, name), (seq, text, at) in newest.items():
        added = created.get(name)
        # Sharing now or removed; or refused before this element was added (an element
        # added again under the same name starts without the old one's refusal).
        if type_id != "sharing-refused" or added is None or at < added:
            continue
        started = newest.get(("sharing-started", name))
        if started is None or started[0] < seq:
            found.append((seq, name, text))
    found.sort(reverse=True)
    return [(name, text) for _, name, text in found[:MAX_REFUSALS]]


async def banners_of(services: Services) -> list[Banner]:
    banners: list[Banner] = []
    if services.manager.is_active("ftp-inactive", "hub"):
        banners.append(
            Banner(
                "Flow Through Provisioning Inactive: hub changes are not shared with the "
                "elements until sharing is started again.",
                "/ui/sharing",
                "Open the sharing page",
            )
        )
    store = services.store
    if store is not None:
        elements = await asyncio.to_thread(store.elements.all)
        created = {e.name: e.created_at for e in elements if not e.sharing}
        for name, text in await asyncio.to_thread(_refusals, store.engine, created):
            banners.append(
                Banner(
                    # The event's text starts with the same words: said once.
                    f"SDS Sharing could not be started ({name}): "
                    + text.removeprefix("Sharing could not be started: "),
                    "/ui/sharing",
                    "Open the sharing page",
                )
            )
    return banners
