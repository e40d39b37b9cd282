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

from sqlalchemy import Engine

from agent.alarms import queries
from agent.api.services import Services

REFUSALS_READ = 20
"""The newest sharing-refused events a page looks at (a page costs a bounded read)."""


@dataclass(frozen=True)
class Banner:
    text: str
    href: str
    label: str


def _refusals(engine: Engine, sharing: dict[str, bool]) -> list[tuple[str, str]]:
    """(element, text) of each refused start still unresolved, newest first."""
    found: dict[str, str] = {}
    for event in reversed(
        queries.list_events(engine, type_id="sharing-refused", limit=REFUSALS_READ)
    ):
        name = str(event["resource"])
        if name in found or sharing.get(name, True):
            continue  # seen already, sharing now, or removed
        started = queries.list_events(engine, type_id="sharing-started", resource=name, limit=1)
        if started and int(started[0]["seq"]) > int(event["seq"]):
            continue
        found[name] = str(event["text"])
    return list(found.items())


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
        sharing = {e.name: e.sharing for e in elements}
        for name, text in await asyncio.to_thread(_refusals, store.engine, sharing):
            banners.append(
                Banner(
                    f"SDS Sharing could not be started ({name}): {text}",
                    "/ui/sharing",
                    "Open the sharing page",
                )
            )
    return banners
