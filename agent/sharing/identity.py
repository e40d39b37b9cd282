"""Restore and upgrade detection (ftp-inactive): the identity file and the release marker.

``<data_dir>/store-identity.json`` records the store's identity and the notification
sequence this agent saw, written after commits (at most once a second) and at stop. A
store whose identity differs, or whose sequence is behind the recorded one, was replaced
or restored; a ``sharing_release`` marker other than this release means an upgrade.
Either, under data that had sharing enabled, disables sharing and raises ftp-inactive.
The file stays on the server: a store restored onto a new or reinstalled one is found by
the elements instead (agent.sharing.witness), which disable sharing the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from agent import __version__
from agent.alarms.ports import AlarmSink, NotificationLog
from agent.sharing.group import BLOCKING_ALARMS
from agent.sharing.sink import HUB, clear_if_active
from agent.store.access import StoreAccess
from agent.store.distributions import clear_applied
from agent.store.elements import Element

IDENTITY_FILE = "store-identity.json"
RELEASE_KEY = "sharing_release"
"""The ``meta`` key naming the release that last had sharing enabled."""


class StoreIdentity:
    """Checks the store against the identity file at start, keeps the file current.

    Args:
        store: the elements, the release marker, the sharing records to disable.
        alarms: ftp-inactive and the blocking alarms cleared when sharing is disabled.
        log: the committed notification sequence, and its commit listeners.
        data_dir: where the identity file is.
        store_id: the store's identity (a UUID in ``meta``).
        monotonic: seconds for the once-a-second write (injected by tests).
    """

    def __init__(
        self,
        store: StoreAccess,
        alarms: AlarmSink,
        log: NotificationLog,
        data_dir: Path,
        store_id: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._alarms = alarms
        self._log = log
        self._path = data_dir / IDENTITY_FILE
        self._store_id = store_id
        self._monotonic = monotonic
        self._written = 0.0
        self._lock = threading.Lock()
        self._disabling = asyncio.Lock()
        """One disable at a time: the witnesses of several elements may find it at once."""
        self._alarm_owed: tuple[list[str], list[str]] | None = None
        """(reasons, elements that shared) of a disable whose ftp-inactive is not raised yet."""

    async def check(self) -> None:
        """At start: disable sharing after a restore or an upgrade, then record the
        identity and follow every commit."""
        recorded: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads(self._path.read_text())
        elements = await asyncio.to_thread(self._store.elements.all)
        marker = await asyncio.to_thread(self._store.meta.get, RELEASE_KEY)
        reasons = self._reasons(recorded, marker)
        if reasons and any(e.sharing for e in elements):
            await self.disable(reasons)
            logger.warning("sharing disabled: {}", "; ".join(reasons))
        if marker and marker != __version__:
            await self.mark_release()
        await asyncio.to_thread(self.write, self._log.last_seq)
        self._log.add_listener(self._record)

    def _reasons(self, recorded: dict[str, Any], marker: str | None) -> list[str]:
        reasons = []
        last_seq = self._log.last_seq
        if recorded.get("store_id") not in (None, self._store_id):
            reasons.append(
                f"the store's identity is {self._store_id}, not the "
                f"{recorded['store_id']} this agent recorded: it was restored "
                "or replaced"
            )
        elif int(recorded.get("last_seq", 0)) > last_seq:
            reasons.append(
                f"the store's notification sequence is at "
                f"{last_seq}, behind the {recorded['last_seq']} this "
                "agent recorded: it was restored from a backup"
            )
        if marker and marker != __version__:
            reasons.append(f"the agent was upgraded from {marker} to {__version__}")
        return reasons

    async def mark_release(self) -> None:
        """Sharing is enabled under this release (an upgrade is detected against it)."""
        await asyncio.to_thread(self._store.meta.set, RELEASE_KEY, __version__)

    async def disable(self, reasons: list[str]) -> None:
        """Disable sharing with every element and raise ftp-inactive with ``reasons``; its
        hint names an element that shared (the first step back is its Start Sharing)."""
        async with self._disabling:
            await self._disable(reasons)

    async def _disable(self, reasons: list[str]) -> None:
        elements = await asyncio.to_thread(self._store.elements.all)
        sharing = [e.name for e in elements if e.sharing]
        if not sharing:
            # Disabled already (by the identity check, or another element's witness),
            # unless the alarm of a disable that committed could not be raised (a store
            # outage in between): then it is raised now, on the retry.
            if self._alarm_owed is not None:
                await self._raise_inactive(*self._alarm_owed)
            return
        await self._disable_sharing(elements)
        self._alarm_owed = (reasons, sharing)
        await self._raise_inactive(reasons, sharing)

    async def _raise_inactive(self, reasons: list[str], sharing: list[str]) -> None:
        await self._alarms.raise_alarm(
            "ftp-inactive",
            HUB,
            text="Flow Through Provisioning Inactive: " + "; ".join(reasons) + ". Sharing "
            f"(with {', '.join(sharing)}) is disabled until an element starts sharing again",
            resolution=f"provsync sharing start {sharing[0]} | POST /api/v1/sharing/start "
            f'{{"element": "{sharing[0]}"}}',
        )
        self._alarm_owed = None

    async def _disable_sharing(self, elements: list[Element]) -> None:
        store = self._store

        def work() -> None:
            with store.begin() as conn:
                store.elements.stop_sharing_all(conn)
                for element in elements:
                    store.conflicts.close_open_for(conn, element.id, "superseded")
                    # The elements' logs keep the hub updates this store lacks: a mark
                    # kept would find them again at every start once sharing is back.
                    # Cleared, the next check takes each log as it is then (the
                    # element's last_seq is not known here without asking it).
                    clear_applied(conn, element.id)
                store.devices.drop_all(conn)  # registrations are gone with sharing

        await asyncio.to_thread(work)
        for type_id in BLOCKING_ALARMS:
            for _, resource, qualifier in self._alarms.active_keys(type_id):
                await clear_if_active(
                    self._alarms, type_id, resource, qualifier, "sharing was disabled"
                )

    def write(self, last_seq: int) -> None:
        """Record the identity with ``last_seq`` (blocking: a small file, replaced whole)."""
        with self._lock:  # the alarm writer thread and the stop both write it
            temporary = self._path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"store_id": self._store_id, "last_seq": last_seq}))
            os.replace(temporary, self._path)

    def write_now(self) -> None:
        """At stop: record the sequence committed last."""
        self.write(self._log.last_seq)

    def _record(self, last_seq: int) -> None:
        # Called after every commit of the alarm writer; written at most once a second, so
        # a store restored from a backup shows a sequence behind the one recorded here.
        if self._monotonic() - self._written >= 1.0:
            self._written = self._monotonic()
            with contextlib.suppress(OSError):
                self.write(last_seq)
