"""The sharing service: a facade over the sharing components, one module per concern.

- identity: restore and upgrade detection (ftp-inactive), the identity file; witness: a
  restore found from what the elements applied (also on a new server);
- gate: the group's state, the refusals while it is blocked, the one running sync;
- membership: start sharing (version checked), the records of a removed element;
- user_sync (with plan_apply): syncs from an element to the hub;
- pushes: updates elements push; reconcile: the conflicts and their resolution;
- outbound: hub changes, the operator's retry and delete, the purge; distribution
  (the dispatcher: one sender per element) and distribution_alarms;
- device_data; activation (messaging elements);
- shared by them: group (the pure group state, also the SNMP view's), parts (what the
  hub-changing components share), connections, tasks, sink, changes.

Alarms follow the behaviour (docs/sharing.md): sync-required is raised by a start
sharing and cleared by any completed sync to the hub; sync-reconcile-required by a sync
that found unresolved conflicts, cleared when none is left; while either is active, hub
changes are refused and nothing is distributed. ftp-inactive is raised at start when the
store was restored or the agent upgraded under data that had sharing enabled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.alarms.manager import AlarmManager
from agent.clock import SYSTEM_CLOCK, Clock
from agent.config import SharingSettings, SyncSettings
from agent.connectors.connections import ElementConnections
from agent.connectors.registry import ConnectorFactory, connect
from agent.errors import ElementNotFound
from agent.sharing.activation import Activation
from agent.sharing.device_data import DeviceData, in_group
from agent.sharing.distribution import Dispatcher
from agent.sharing.distribution_alarms import DistributionAlarms
from agent.sharing.gate import Gate
from agent.sharing.group import NOT_SHARING
from agent.sharing.identity import IDENTITY_FILE, StoreIdentity
from agent.sharing.membership import Membership
from agent.sharing.outbound import Outbound
from agent.sharing.parts import HubParts
from agent.sharing.pushes import Pushes
from agent.sharing.reconcile import ConflictReport, Planned, Reconcile
from agent.sharing.sink import HUB
from agent.sharing.tasks import Tasks
from agent.sharing.user_sync import UserSync
from agent.sharing.witness import ElementWitness
from agent.store.access import StoreAccess
from agent.store.distributions import Distribution
from agent.store.elements import Element
from agent.store.encryption import KeyRing
from agent.sync.contact import ContactAlarms, login_test


class SharingService:
    """Sharing with the hub, as the control API and app.py see it.

    Args:
        settings, sync: [sharing] and [sync] settings.
        manager: the alarm manager (its sink, and the log sequence of the identity file).
        store: the store's repositories.
        data_dir: where the identity file is kept.
        store_id: the store's identity.
        ring: decrypts the element credentials.
        connector_factory: makes the elements' connectors (tests pass their own).
        clock: the clock (its wall time stamps records and schedules retries).
    """

    def __init__(
        self,
        settings: SharingSettings,
        sync: SyncSettings,
        manager: AlarmManager,
        store: StoreAccess,
        data_dir: Path,
        store_id: str,
        ring: KeyRing,
        *,
        connector_factory: ConnectorFactory = connect,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self._alarms = manager
        self._store = store
        self._tasks = Tasks()
        connections = ElementConnections(store, ring, sync, connector_factory)
        self._identity = StoreIdentity(store, manager, manager, data_dir, store_id)
        self._gate = Gate(manager)
        self._errors = DistributionAlarms(store, manager, settings.errors_major_at)
        self._dispatcher = Dispatcher(
            store,
            settings,
            sync,
            self._gate.blocked,
            self._errors.refresh,
            self._errors.contact,
            connections=connections,
            clock=clock.now,
        )
        self._membership = Membership(
            store, manager, connections, settings.min_element_version, self._identity.mark_release
        )
        parts = HubParts(store, manager, self._gate, self._dispatcher, clock.now)
        self._user_sync = UserSync(parts, connections, self._tasks, settings, sync)
        self._pushes = Pushes(parts, settings.classes)
        self._reconcile = Reconcile(parts, self._errors.refresh)
        self._outbound = Outbound(parts, self._errors.refresh, settings)
        self._devices = DeviceData(store, manager, connections, self._tasks, sync.page_size)
        self._activation = Activation(store, manager, connections)
        self._witness = ElementWitness(
            store,
            connections,
            self._dispatcher,
            settings,
            sync,
            self._identity.disable,
            self._errors.contact,
            self._tasks,
        )
        self._connections = connections
        self._contact = ContactAlarms(manager)
        self._login_timeout = sync.timeout + 1.0
        """A login test's bound: one request without retries, and a margin."""

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._identity.check()
        await self._witness.start()  # holds each sender until its element's log was read
        await self._dispatcher.start()
        await self._errors.start(await self._elements())
        await self._devices.start(await self._elements())
        self._tasks.spawn(self._outbound.purge_loop(), "distribution-purge")

    async def purge_once(self) -> int:
        """One purge round of applied distributions (the purge loop's step)."""
        return await self._outbound.purge_once()

    async def stop(self) -> None:
        await self._tasks.stop()
        await self._dispatcher.stop()
        self._identity.write_now()

    async def _elements(self) -> list[Element]:
        return await asyncio.to_thread(self._store.elements.all)

    # ------------------------------------------------------------------ the group
    def blocked(self) -> str:
        """Why hub changes may not be shared now ("" when they may)."""
        return self._gate.blocked()

    def group_state(self) -> str:
        return self._gate.group_state()

    async def start_sharing(self, ident: str, software_version: str | None) -> dict[str, Any]:
        """Start sharing for an element; without a version (an operator starting it from the
        hub) the element is asked for its own."""
        self._witness.called_in(ident)
        element = await self._membership.start(ident, software_version)
        self._dispatcher.ensure(element.id, element.name)
        self._devices.register(element)
        return {"element": element.name, "state": self.group_state()}

    async def forget(self, element: Element) -> None:
        """The element is being removed: its sync stops, its records go."""
        await self._user_sync.forget(element)
        await self._dispatcher.forget(element.id)
        await self._membership.drop_records(element)
        await self._activation.element_updated(element.name, "removed")

    async def credentials_set(self, element: Element) -> str:
        """New credentials were saved: log in with them now; the contact alarms follow."""
        error = await login_test(
            lambda: self._connections.open(element, retries=0), self._login_timeout
        )
        outcome = await self._contact.tested(element, error)
        # The sender's kept connection logs in with the old ones; what waited goes now,
        # and a store check waiting for its next attempt makes it now.
        self._dispatcher.reconnect(element.id)
        self._witness.called_in(element.name)
        return outcome

    # ------------------------------------------------------------------ element to hub
    # The element called in, so it is up (or its sync is about to read it): a check of its
    # log for a restore that waits for the next attempt is made now, not after the backoff
    # (a sync waits for it: both take the element's hold).
    async def request_sync(self, ident: str, trigger: str = "element") -> int:
        self._witness.called_in(ident)
        return await self._user_sync.request(ident, trigger)

    async def push(self, ident: str, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._witness.called_in(ident)
        return await self._pushes.push(ident, updates)

    async def device_notification(self, ident: str, devices: list[dict[str, Any]]) -> int:
        self._witness.called_in(ident)
        return await self._devices.notification(ident, devices)

    # ------------------------------------------------------------------ reconcile
    async def conflicts(self, open_only: bool = True) -> ConflictReport:
        return await self._reconcile.conflicts(open_only)

    async def resolve(
        self,
        conflict_id: int | None,
        take: str,
        by: str | None,
        element: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> dict[str, Any]:
        return await self._reconcile.resolve(conflict_id, take, by, element, ids)

    async def plan(
        self,
        conflict_id: int | None,
        take: str,
        element: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Planned]:
        """What ``resolve`` with these arguments would do now; nothing is changed."""
        return await self._reconcile.plan(conflict_id, take, element, ids)

    # ------------------------------------------------------------------ hub to elements
    async def hub_changes(self, changes: list[dict[str, Any]], by: str | None) -> dict[str, Any]:
        """Flow-through provisioning: change the hub's shared data and distribute it."""
        return await self._outbound.hub_changes(changes, by)

    async def retry_distributions(
        self, ids: Sequence[int] | None, element: str | None, by: str | None
    ) -> dict[str, int]:
        return await self._outbound.retry(ids, element, by)

    async def delete_distributions(
        self, ids: Sequence[int] | None, element: str | None, by: str | None
    ) -> dict[str, int]:
        return await self._outbound.delete(ids, element, by)

    async def failed_distributions(
        self, ids: Sequence[int] | None, element: str | None, limit: int
    ) -> tuple[list[Distribution], int]:
        """The failed distributions a retry or delete with ``ids`` and ``element`` would
        take (the first ``limit``), and how many fail in all (of ``element``)."""
        return await self._outbound.failed(ids, element, limit)

    # ------------------------------------------------------------------ device data
    async def device_sync(self) -> None:
        self._devices.sync()

    async def devices(self) -> list[dict[str, Any]]:
        return await self._devices.listed()

    # ------------------------------------------------------------------ messaging elements
    async def element_updated(self, name: str, how: str) -> None:
        """A network element changed: messaging elements programmed with it need activation,
        and its sender connects again (the address may be new)."""
        await self._activation.element_updated(name, how)
        with contextlib.suppress(ElementNotFound):
            element = await asyncio.to_thread(self._store.elements.get, name)
            self._dispatcher.reconnect(element.id)
            self._witness.called_in(name)

    async def activate(self, name: str) -> dict[str, Any]:
        return await self._activation.activate(name)

    # ------------------------------------------------------------------ status
    async def status(self) -> dict[str, Any]:
        # The sharing group, not every element: one that never shared has no state here.
        elements = [e for e in await self._elements() if in_group(e)]
        counts = await asyncio.to_thread(self._store.distributions.open_counts)
        state = self.group_state()
        return {
            "state": state if any(e.sharing for e in elements) else NOT_SHARING,
            "blocked": self.blocked(),
            "ftp_inactive": self._alarms.is_active("ftp-inactive", HUB),
            "min_element_version": self.settings.min_element_version,
            "reconcile_running": self._gate.reconcile_running(),
            "sync_running": self._gate.sync_running,
            # Elements whose change log is still to be read for a restore (agent start).
            "store_check": sorted(self._witness.checking),
            "conflicts": await asyncio.to_thread(self._store.conflicts.counts),
            "elements": [
                {
                    "name": e.name,
                    "type": e.type,
                    "sharing": state if e.sharing else NOT_SHARING,
                    "device_data": e.device_data,
                    "pending": counts.get(e.id, {}).get("pending", 0)
                    + counts.get(e.id, {}).get("inflight", 0),
                    "errors": counts.get(e.id, {}).get("failed", 0),
                }
                for e in elements
            ],
        }


__all__ = ["IDENTITY_FILE", "ConflictReport", "Planned", "SharingService"]
