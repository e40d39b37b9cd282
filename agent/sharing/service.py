"""The sharing service: start sharing, syncs to the hub, pushed updates, reconcile,
flow-through hub changes, device data and messaging activation.

Alarms follow the behaviour (DESIGN.md, Sharing): sync-required is raised by a start
sharing and cleared by any completed sync to the hub; sync-reconcile-required by a sync
that found unresolved conflicts, cleared when none is left; while either is active, hub
changes are refused and nothing is distributed. ftp-inactive is raised at start when the
store was restored or the agent upgraded under data that had sharing enabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from packaging.version import InvalidVersion, Version

from agent import __version__, clock
from agent.alarms.contact import CONTACT_ALARMS, auth_alarm
from agent.alarms.manager import AlarmManager
from agent.config import SharingSettings, SyncSettings
from agent.connectors.base import Connector, Credentials
from agent.connectors.registry import connect
from agent.errors import (
    ConnectorError,
    InvalidRequest,
    ProvsyncError,
    SharingError,
)
from agent.sharing.distribution import Dispatcher
from agent.sharing.merge import Plan, compare, element_op
from agent.store.access import StoreAccess
from agent.store.conflicts import Conflict, Found
from agent.store.element_types import MESSAGING
from agent.store.elements import Element
from agent.store.encryption import KeyRing
from agent.store.outage import ThrottledLog, is_store_outage
from agent.store.rows import Data, Key
from agent.store.shared_data import Change

HUB = "hub"
"""Resource of hub-wide alarms and events (ftp-inactive, device data)."""
IDENTITY_FILE = "store-identity.json"
OPS = ("create", "update", "delete")
UNREACHABLE_AFTER = 3
"""Failed sending rounds in a row (with backoff between) before element-unreachable."""


@dataclass(frozen=True, slots=True)
class ConflictReport:
    """Reconcile at a glance: whether it runs, counts per category, the conflicts."""

    running: bool
    summary: dict[str, int]
    conflicts: list[Conflict]


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise InvalidRequest(f"{text!r} is not a software version such as 10.2.1") from None


class SharingService:
    def __init__(
        self,
        settings: SharingSettings,
        sync: SyncSettings,
        manager: AlarmManager,
        store: StoreAccess,
        data_dir: Path,
        store_id: str,
        ring: KeyRing,
    ) -> None:
        self.settings = settings
        self.sync = sync
        self.manager = manager
        self.store = store
        self.data_dir = data_dir
        self.store_id = store_id
        self.ring = ring
        self.dispatcher = Dispatcher(
            store,
            settings,
            sync,
            self.blocked,
            self._refresh_errors,
            self._contact,
            ring=ring,
        )
        self._hub_lock = asyncio.Lock()
        self._sync_running: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._errors: dict[int, int] = {}
        self._syncs: dict[int, tuple[asyncio.Task[Any], int]] = {}
        """Running syncs to the hub by element id: (task, job id)."""
        self._identity_written = 0.0
        self._identity_lock = threading.Lock()
        self._outages = ThrottledLog()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._check_identity()
        self.manager.add_listener(self._record_identity)
        await self.dispatcher.start()
        for element in await asyncio.to_thread(self.store.elements.all):
            if element.sharing:
                self._errors[element.id] = -1  # unknown: the first refresh decides
                await self._refresh_errors(element.id, element.name)
        if any(e.sharing and e.device_data for e in await self._elements()):
            self._spawn(self._announce_device_data(), "device-data")
        self._spawn(self._purge_loop(), "distribution-purge")

    async def _purge_loop(self) -> None:
        """Applied distributions stay listed for [sharing] keep_done, then go."""
        while True:
            await self.purge_once()
            await asyncio.sleep(min(600.0, max(self.settings.keep_done / 4, 1.0)))

    async def purge_once(self) -> int:
        """One purge round; a store outage is one throttled line, and the loop lives on
        (a task that died of it would never purge again)."""
        try:
            removed = await asyncio.to_thread(
                self.store.distribution_admin.purge_done, self.settings.keep_done
            )
        except ProvsyncError as exc:
            logger.warning("distribution purge failed: {}", exc)
            return 0
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            self._outages.warning("distribution purge: store write failed", exc)
            return 0
        if removed:
            logger.info("purged {} applied distributions", removed)
        return removed

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.dispatcher.stop()
        self._write_identity(self.manager.last_seq)

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _elements(self) -> list[Element]:
        return await asyncio.to_thread(self.store.elements.all)

    async def _open(self, element: Element) -> Connector:
        stored = await asyncio.to_thread(self.store.elements.credentials, element.id, self.ring)
        # The connector contract's own type (the same fields): converted at the boundary.
        credentials = None if stored is None else Credentials(stored.username, stored.password)
        return connect(element, credentials, timeout=self.sync.timeout, retries=self.sync.retries)

    async def _clear(
        self, type_id: str, resource: str, qualifier: str = "", note: str = ""
    ) -> None:
        if self.manager.is_active(type_id, resource, qualifier):
            with contextlib.suppress(ProvsyncError):
                await self.manager.clear(
                    type_id=type_id, resource=resource, qualifier=qualifier, note=note or None
                )

    # ------------------------------------------------------------------ identity (ftp-inactive)
    def _identity_path(self) -> Path:
        return self.data_dir / IDENTITY_FILE

    def _write_identity(self, last_seq: int) -> None:
        with self._identity_lock:  # the alarm writer thread and the stop both write it
            self._write_identity_locked(last_seq)

    def _write_identity_locked(self, last_seq: int) -> None:
        path = self._identity_path()
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"store_id": self.store_id, "last_seq": last_seq}))
        os.replace(temporary, path)

    def _record_identity(self, last_seq: int) -> None:
        # Called after every commit of the alarm writer; written at most once a second, so
        # a store restored from a backup shows a sequence behind the one recorded here.
        if time.monotonic() - self._identity_written >= 1.0:
            self._identity_written = time.monotonic()
            with contextlib.suppress(OSError):
                self._write_identity(last_seq)

    async def _check_identity(self) -> None:
        recorded: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads(self._identity_path().read_text())
        elements = await self._elements()
        marker = await asyncio.to_thread(self.store.meta.get, "sharing_release")
        reasons = []
        if recorded.get("store_id") not in (None, self.store_id):
            reasons.append(
                f"the store's identity is {self.store_id}, not the "
                f"{recorded['store_id']} this agent recorded: it was restored "
                "or replaced"
            )
        elif int(recorded.get("last_seq", 0)) > self.manager.last_seq:
            reasons.append(
                f"the store's notification sequence is at "
                f"{self.manager.last_seq}, behind the {recorded['last_seq']} this "
                "agent recorded: it was restored from a backup"
            )
        if marker and marker != __version__:
            reasons.append(f"the agent was upgraded from {marker} to {__version__}")
        sharing = [e.name for e in elements if e.sharing]
        if sharing and reasons:
            await self._disable_sharing(elements)
            await self.manager.raise_alarm(
                "ftp-inactive",
                HUB,
                text="Flow Through Provisioning Inactive: " + "; ".join(reasons) + ". Sharing "
                f"(with {', '.join(sharing)}) is disabled until an element starts sharing again",
            )
            logger.warning("sharing disabled: {}", "; ".join(reasons))
        if marker and marker != __version__:
            await asyncio.to_thread(self.store.meta.set, "sharing_release", __version__)
        await asyncio.to_thread(self._write_identity, self.manager.last_seq)

    async def _disable_sharing(self, elements: list[Element]) -> None:
        def work() -> None:
            with self.store.begin() as conn:
                self.store.elements.stop_sharing_all(conn)
                for element in elements:
                    self.store.conflicts.close_open_for(conn, element.id, "superseded")
                self.store.devices.drop_all(conn)  # registrations are gone with sharing

        await asyncio.to_thread(work)
        for type_id in ("sync-required", "sync-reconcile-required"):
            for _, resource, qualifier in self.manager.active_keys(type_id):
                await self._clear(type_id, resource, qualifier, "sharing was disabled")

    # ------------------------------------------------------------------ gating
    def blocked(self) -> str:
        """Why hub changes may not be shared now ("" when they may)."""
        for type_id, why in (
            (
                "sync-reconcile-required",
                "conflicts found by a sync wait for reconcile "
                "(provsync sharing reconcile; GET /api/v1/sharing/conflicts)",
            ),
            (
                "sync-required",
                "an element started sharing and no sync to the hub has completed "
                "since (provsync sharing sync ELEMENT; POST /api/v1/sharing/sync)",
            ),
        ):
            keys = self.manager.active_keys(type_id)
            if keys:
                names = ", ".join(sorted({resource for _, resource, _ in keys}))
                return f"{type_id} is active ({names}): {why}"
        return ""

    def _reconcile_running(self) -> bool:
        return bool(self.manager.active_keys("sync-reconcile-required"))

    def group_state(self) -> str:
        if self.manager.active_keys("sync-required"):
            return "syncRequired"
        if self._reconcile_running():
            return "reconcileRequired"
        return "sharing"

    # ------------------------------------------------------------------ start sharing
    async def start_sharing(self, ident: str, software_version: str | None) -> dict[str, Any]:
        """Start sharing for an element; without a version (an operator starting it from the
        hub) the element is asked for its own."""
        element = await asyncio.to_thread(self.store.elements.find, ident)
        if software_version is None:
            async with await self._open(element) as connector:
                software_version = (await connector.info()).software_version
        minimum = self.settings.min_element_version
        if _version(software_version) < _version(minimum):
            text = (
                f"Sharing could not be started: {element.name} runs {software_version}, "
                f"older than the minimum {minimum}; the attempt was reverted"
            )
            await self.manager.emit_event(
                "sharing-refused",
                element.name,
                text=text,
                details={"software_version": software_version, "minimum": minimum},
            )
            raise SharingError(text)
        await asyncio.to_thread(self.store.elements.set_state, element.id, sharing=True)
        await asyncio.to_thread(self.store.meta.set, "sharing_release", __version__)
        await self.manager.emit_event(
            "sharing-started",
            element.name,
            text=f"{element.name} started sharing with the hub",
            details={"software_version": software_version},
        )
        await self.manager.raise_alarm(
            "sync-required",
            element.name,
            text=f"{element.name} started sharing; no sync from an element has completed since",
        )
        self.dispatcher.ensure(element.id, element.name)
        self._spawn(self._register_device_data(element.id), f"device-data:{element.name}")
        return {"element": element.name, "state": self.group_state()}

    # ------------------------------------------------------------------ sync to the hub
    async def request_sync(self, ident: str, trigger: str = "element") -> int:
        element = await asyncio.to_thread(self.store.elements.find, ident)
        if not element.sharing:
            raise SharingError(f"{element.name} does not share with the hub: start sharing first")
        if self._reconcile_running():
            raise SharingError(
                "a reconcile is in progress: resolve the open conflicts first "
                "(provsync sharing reconcile)"
            )
        if self._sync_running is not None:
            raise SharingError(
                f"a sync from {self._sync_running} is running; try again when it completes"
            )
        self._sync_running = element.name
        try:
            job = await asyncio.to_thread(
                self.store.jobs.create, element, "user-sync", trigger, None
            )
        except BaseException:
            self._sync_running = None
            raise
        task = self._spawn(self._user_sync(element, job), f"user-sync:{element.name}")
        self._syncs[element.id] = (task, job)
        task.add_done_callback(lambda _: self._syncs.pop(element.id, None))
        return job

    async def _read_element(
        self, element: Element, job: int
    ) -> tuple[dict[Key, Data], list[str], str]:
        """The element's shared objects, the shared classes it offers, its data epoch."""
        found: dict[Key, Data] = {}
        async with await self._open(element) as connector:
            info = await connector.info()
            offered = [cls for cls in self.settings.classes if cls in info.classes]
            for cls in offered:
                async for page in connector.pages(cls, limit=self.sync.page_size):
                    for item in page.objects:
                        found[(cls, item.key)] = item.data
                    await asyncio.to_thread(
                        self.store.jobs.update, job, counts={"progress": len(found)}
                    )
        return found, offered, info.epoch

    async def _user_sync(self, element: Element, job: int) -> None:
        async with self.dispatcher.hold(element.id):
            await self._user_sync_held(element, job)

    async def _user_sync_held(self, element: Element, job: int) -> None:
        try:
            await asyncio.to_thread(
                self.store.jobs.update, job, state="running", started_at=clock.now()
            )
            await self.manager.emit_event(
                "user-sync-started", element.name, text=f"sync from {element.name} started"
            )
            try:
                # Only classes the element has are compared: the others are not deletions.
                data, offered, epoch = await self._read_element(element, job)
                async with self._hub_lock:
                    hub = await asyncio.to_thread(self.store.shared.load, self.settings.classes)
                    base = await asyncio.to_thread(self.store.bases.load, element.id)
                    if element.sharing_epoch and epoch != element.sharing_epoch:
                        # Restored or reinstalled since the last sync: what it lacks now was
                        # not deleted there. Without a base, nothing is taken as a deletion.
                        logger.warning(
                            "{}'s data epoch changed since its last sync: its base is dropped",
                            element.name,
                        )
                        base = {}
                    plan = compare(data, hub, base, offered)
                    await asyncio.to_thread(self._apply_plan, element, plan, hub, base, epoch)
                    # Still holding the lock: no hub change slips between the alarms.
                    await self._synced(element, job, plan.counts())
            except ProvsyncError as exc:
                await self._sync_failed(element, job, str(exc))
                return
            except Exception as exc:
                logger.exception("sync from {} failed unexpectedly", element.name)
                await self._sync_failed(element, job, f"internal error: {exc!r}")
                return
            await self.dispatcher.recount()
            self.dispatcher.wake()
        finally:
            self._sync_running = None

    async def _synced(self, element: Element, job: int, counts: dict[str, int]) -> None:
        await asyncio.to_thread(
            self.store.jobs.update, job, state="done", ended_at=clock.now(), counts=counts
        )
        await self._clear("sync-failed", element.name, "user-sync")
        await self.manager.emit_event(
            "user-sync-completed",
            element.name,
            details=counts,
            text=f"sync from {element.name} completed: {counts['to_hub']} to the hub, "
            f"{counts['to_element']} to the element, {counts['automatic']} merged, "
            f"{counts['review']} for review, {counts['unresolved']} unresolved",
        )
        # Raised before sync-required clears, so sharing is never unblocked in between.
        if counts["unresolved"]:
            await self.manager.raise_alarm(
                "sync-reconcile-required",
                element.name,
                text=f"sync from {element.name} found {counts['unresolved']} unresolved "
                f"conflicts ({counts['review']} more for review)",
            )
        else:
            await self._clear(
                "sync-reconcile-required", element.name, note="a new sync replaced its conflicts"
            )
        for _, resource, qualifier in self.manager.active_keys("sync-required"):
            await self._clear(
                "sync-required", resource, qualifier, f"sync from {element.name} completed"
            )
        if not await asyncio.to_thread(self.store.conflicts.unresolved_elements):
            # Sharing is back: started again, synced, nothing left to reconcile.
            await self._clear("ftp-inactive", HUB, note=f"{element.name} shares again")

    async def _sync_failed(self, element: Element, job: int, message: str) -> None:
        await asyncio.to_thread(
            self.store.jobs.update,
            job,
            state="failed",
            ended_at=clock.now(),
            error=message,
        )
        text = f"sync from {element.name} failed: {message}"
        await self.manager.raise_alarm(
            "sync-failed", element.name, qualifier="user-sync", text=text
        )

    def _apply_plan(
        self, element: Element, plan: Plan, hub: dict[Key, Data], base: dict[Key, Data], epoch: str
    ) -> None:
        """Everything a sync decided, in one transaction.

        An element-side change that would give two users one directory number or e-mail
        address is not taken: it becomes an unresolved conflict (``plan`` is updated).
        """
        at = clock.now()
        with self.store.begin() as conn:
            others = self.store.elements.sharing_targets(conn, exclude=element.id)
            self.store.conflicts.close_open_for(conn, element.id, "superseded")
            if epoch != element.sharing_epoch:
                if element.sharing_epoch:  # the old base was not used: it goes
                    self.store.bases.drop(conn, element.id)
                self.store.elements.update(conn, element.id, sharing_epoch=epoch)
            changes, taken = [], []
            for cls, key, data in plan.to_hub:
                change = Change(cls, key, element_op(hub.get((cls, key)), data), data)
                try:
                    self.store.shared.check_unique(conn, change)
                except InvalidRequest as exc:
                    # A merge that would break uniqueness is not applied either way.
                    merged = [f for f in plan.found if (f.cls, f.key) == (cls, key)]
                    plan.found = [f for f in plan.found if f not in merged]
                    plan.to_element = [t for t in plan.to_element if t[:2] != (cls, key)]
                    element_value = merged[0].element if merged else data
                    plan.found.append(
                        Found(
                            cls,
                            key,
                            key,
                            "unresolved",
                            hub.get((cls, key)),
                            element_value,
                            base.get((cls, key)),
                            str(exc),
                        )
                    )
                    continue
                self.store.shared.write(conn, [change], element.name, at)
                changes.append(change)
                taken.append((cls, key, data))
            plan.to_hub = taken
            self.store.distributions.add(conn, others, changes, element.name, at)
            self.store.bases.set(conn, element.id, plan.to_hub + plan.agreed)
            to_element = [Change(cls, key, op, data) for cls, key, op, data in plan.to_element]
            self.store.distributions.add(conn, [(element.id, element.name)], to_element, HUB, at)
            self.store.conflicts.add(conn, element.id, element.name, plan.found, at)

    # ------------------------------------------------------------------ pushed updates
    async def push(self, ident: str, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        element = await asyncio.to_thread(self.store.elements.find, ident)
        results: list[dict[str, Any]] = []
        if not updates:
            return results
        async with self._hub_lock:
            refusal = self._push_refusal(element)
            if refusal:  # the whole push, with one event (a big push is not an event flood)
                first = updates[0] if updates else {}
                what = f"{first.get('class', '')} {first.get('key', '')} ({first.get('op', '')})"
                more = f" and {len(updates) - 1} more" if len(updates) > 1 else ""
                await self.manager.emit_event(
                    "update-rejected",
                    element.name,
                    text=f"update of {what}{more} from {element.name} rejected: {refusal}",
                    details={
                        "element": element.name,
                        "count": len(updates),
                        "updates": updates[:20],
                        "reason": refusal,
                    },
                )
                return [{"status": "rejected", "reason": refusal} for _ in updates]
            for update in updates:
                cls, key = str(update.get("class", "")), str(update.get("key", ""))
                op, data = str(update.get("op", "")), update.get("data")
                try:
                    await asyncio.to_thread(self._take_push, element, cls, key, op, data)
                except (SharingError, InvalidRequest) as exc:
                    reason = str(exc)
                    results.append({"status": "rejected", "reason": reason})
                    await self.manager.emit_event(
                        "update-rejected",
                        element.name,
                        text=f"update of {cls} {key} ({op}) from {element.name} rejected: {reason}",
                        details={
                            "element": element.name,
                            "class": cls,
                            "key": key,
                            "op": op,
                            "reason": reason,
                        },
                    )
                else:
                    results.append({"status": "accepted"})
        await self.dispatcher.recount()
        self.dispatcher.wake()
        return results

    def _push_refusal(self, element: Element) -> str:
        if not element.sharing:
            return f"{element.name} does not share with the hub"
        if self._reconcile_running():
            return "a reconcile is running on the hub"
        if self._sync_running == element.name:
            return f"a sync from {element.name} is running; the next sync takes this change"
        return ""

    def _take_push(self, element: Element, cls: str, key: str, op: str, data: object) -> None:
        change = _checked(self.settings.classes, cls, key, op, data)
        at = clock.now()
        with self.store.begin() as conn:
            waiting = self.store.distributions.waiting(conn, element.id, cls, key)
            if waiting is not None:
                raise SharingError(
                    f"it conflicts with a pending hub change of {cls} {key} "
                    f"(distribution {waiting.id}, {waiting.state})"
                )
            current = self.store.shared.current(conn, cls, key)
            if op == "create" and current is not None and current != data:
                raise InvalidRequest(f"{cls} {key} exists on the hub with other data")
            if change.data == current:
                self.store.bases.set(conn, element.id, [(cls, key, current)])
                return  # nothing new (a replay, or both sides made the same change)
            self.store.shared.check_unique(conn, change)
            change = Change(cls, key, element_op(current, change.data), change.data)
            self.store.shared.write(conn, [change], element.name, at)
            self.store.bases.set(conn, element.id, [(cls, key, change.data)])
            others = self.store.elements.sharing_targets(conn, exclude=element.id)
            self.store.distributions.add(conn, others, [change], element.name, at)

    # ------------------------------------------------------------------ reconcile
    async def conflicts(self, open_only: bool = True) -> ConflictReport:
        rows = await asyncio.to_thread(self.store.conflicts.listed, open_only=open_only)
        counts = await asyncio.to_thread(self.store.conflicts.counts)
        return ConflictReport(self._reconcile_running(), counts, rows)

    async def resolve(
        self, conflict_id: int | None, take: str, by: str | None, element: str | None = None
    ) -> dict[str, Any]:
        if take not in ("hub", "element", "skip"):
            raise InvalidRequest("take must be hub, element or skip")
        async with self._hub_lock:
            if conflict_id is not None:
                row = await asyncio.to_thread(self.store.conflicts.get, conflict_id)
                if row is None:
                    raise InvalidRequest(f"no conflict with id {conflict_id}")
                if row.state != "open":
                    raise InvalidRequest(
                        f"conflict {conflict_id} is already resolved ({row.resolution})"
                    )
                rows = [row]
            else:
                rows = [
                    r
                    for r in await asyncio.to_thread(self.store.conflicts.listed)
                    if element is None or r.element == element
                ]
                if not rows:
                    raise InvalidRequest("no open conflict to resolve")
            done: list[Conflict] = []
            try:
                for row in rows:
                    await asyncio.to_thread(self._resolve_one, row, take, by)
                    done.append(row)
            finally:
                if done:  # what was resolved before a refusal counts
                    await self._after_resolving(done)
        return {"resolved": [r.id for r in rows], "take": take}

    async def _after_resolving(self, rows: list[Conflict]) -> None:
        await self._after_reconcile({r.element for r in rows})
        for element_id, name in {(r.element_id, r.element) for r in rows}:
            await self._refresh_errors(element_id, name)  # a decision may drop failed updates
        await self.dispatcher.recount()
        self.dispatcher.wake()

    def _resolve_one(self, row: Conflict, take: str, by: str | None) -> None:
        at = clock.now()
        store, element_value = self.store, row.element_data
        with store.begin() as conn:
            hub_value = store.shared.current(conn, row.cls, row.hub_key)
            mine = [(row.element_id, row.element)]
            if take == "hub":
                for key in {row.key, row.hub_key}:
                    store.distributions.cancel_open(conn, row.element_id, row.cls, key)
                changes = _overwrite(row.cls, row.hub_key, row.key, element_value, hub_value)
                store.distributions.add(conn, mine, changes, HUB, at)
            elif take == "element":
                changes = _overwrite(row.cls, row.key, row.hub_key, hub_value, element_value)
                for change in changes:
                    # Refuses: nothing of the decision is applied.
                    store.shared.check_unique(conn, change)
                    store.shared.write(conn, [change], row.element, at)
                store.bases.set(conn, row.element_id, [(c.cls, c.key, c.data) for c in changes])
                for change in changes:
                    store.distributions.cancel_open(conn, row.element_id, change.cls, change.key)
                others = store.elements.sharing_targets(conn, exclude=row.element_id)
                store.distributions.add(conn, others, changes, row.element, at)
            store.conflicts.close(conn, row.id, take, by)

    async def _after_reconcile(self, elements: set[str]) -> None:
        unresolved = await asyncio.to_thread(self.store.conflicts.unresolved_elements)
        for name in sorted(elements - unresolved):
            if self.manager.is_active("sync-reconcile-required", name):
                await self._clear("sync-reconcile-required", name, note="reconcile completed")
                counts = await asyncio.to_thread(self.store.conflicts.counts)
                await self.manager.emit_event(
                    "reconcile-completed",
                    name,
                    details=counts,
                    text=f"reconcile of the conflicts found in the sync from {name} completed",
                )
        if not unresolved and any(e.sharing for e in await self._elements()):
            await self._clear("ftp-inactive", HUB, note="reconcile completed")

    # ------------------------------------------------------------------ hub changes
    async def hub_changes(self, changes: list[dict[str, Any]], by: str | None) -> dict[str, Any]:
        """Flow-through provisioning: change the hub's shared data and distribute it."""
        checked = [
            _checked(
                self.settings.classes,
                str(c.get("class", "")),
                str(c.get("key", "")),
                str(c.get("op", "")),
                c.get("data"),
            )
            for c in changes
        ]
        async with self._hub_lock:
            reason = self.blocked()  # under the lock: syncs raise their alarms holding it
            if reason:
                raise SharingError(f"flow-through provisioning is refused: {reason}")
            targets = await asyncio.to_thread(self.store.elements.targets)
            for element_id, name in targets:
                waiting = self.dispatcher.open.get(element_id, 0)
                if waiting + len(checked) > self.settings.distribution_cap:
                    raise SharingError(
                        f"{name} has {waiting} updates not yet distributed (pending or failed); "
                        f"the cap is {self.settings.distribution_cap}: retry or delete its "
                        f"failed distributions (provsync distribution list --element {name})"
                    )
            written = await asyncio.to_thread(self._write_hub, checked, targets)
            for element_id, _ in targets:
                self.dispatcher.open[element_id] = self.dispatcher.open.get(element_id, 0) + len(
                    written
                )
        self.dispatcher.wake()
        return {
            "changes": [
                {"class": c.cls, "key": c.key, "op": c.op, "data": c.data} for c in written
            ],
            "distributions": len(written) * len(targets),
        }

    def _write_hub(self, checked: list[Change], targets: list[tuple[int, str]]) -> list[Change]:
        at = clock.now()
        written: list[Change] = []
        with self.store.begin() as conn:
            for change in checked:
                current = self.store.shared.current(conn, change.cls, change.key)
                if change.op == "create" and current is not None:
                    raise InvalidRequest(f"{change.cls} {change.key} exists")
                if change.op != "create" and current is None:
                    raise InvalidRequest(f"no {change.cls} {change.key} on the hub")
                data = change.data
                if change.op == "update" and data is not None:
                    data = {**current, **data} if isinstance(current, dict) else data
                final = Change(change.cls, change.key, change.op, data)
                self.store.shared.check_unique(conn, final)
                self.store.shared.write(conn, [final], HUB, at)
                written.append(final)
            self.store.distributions.add(conn, targets, written, HUB, at)
        return written

    # ------------------------------------------------------------------ distribution errors
    async def _contact(self, element: Element, error: ConnectorError | None, failures: int) -> None:
        """Contact alarms from distribution, as a sync raises them (next contact clears)."""
        name = element.name
        if error is None:
            for type_id in CONTACT_ALARMS:
                await self._clear(type_id, name, note="distribution reached the element")
            return
        refused = auth_alarm(error, element.address)
        if refused is not None:
            if not self.manager.is_active(refused[0], name):
                await self.manager.raise_alarm(refused[0], name, text=refused[1])
        elif failures >= UNREACHABLE_AFTER and not self.manager.is_active(
            "element-unreachable", name
        ):
            await self.manager.raise_alarm(
                "element-unreachable",
                name,
                text=f"distribution to {name} failed {failures} times in a row: {error}",
            )

    async def _refresh_errors(self, element_id: int, name: str) -> None:
        errors = await asyncio.to_thread(self.store.distribution_admin.failed_count, element_id)
        if errors == 0:
            await self._clear(
                "distribution-errors", name, note="every failed distribution was retried or deleted"
            )
        elif errors != self._errors.get(element_id) or not self.manager.is_active(
            "distribution-errors", name
        ):
            last = await asyncio.to_thread(self.store.distribution_admin.last_error, element_id)
            latest = f"{last.op} {last.cls} {last.key}: {last.error}" if last is not None else ""
            severity = "major" if errors >= self.settings.errors_major_at else "minor"
            await self.manager.raise_alarm(
                "distribution-errors",
                name,
                severity=severity,
                text=f"{errors} shared updates to {name} were rejected; latest: {latest}",
            )
        self._errors[element_id] = errors

    async def retry_distributions(
        self, ids: list[int] | None, element: str | None, by: str | None
    ) -> dict[str, int]:
        element_id = await self._element_id(element)
        found = await asyncio.to_thread(self.store.distribution_admin.retry, ids, element_id)
        return await self._operated("distribution-retried", "retried", found, by)

    async def delete_distributions(
        self, ids: list[int] | None, element: str | None, by: str | None
    ) -> dict[str, int]:
        element_id = await self._element_id(element)
        found = await asyncio.to_thread(self.store.distribution_admin.remove, ids, element_id)
        return await self._operated("distribution-deleted", "deleted", found, by)

    async def _element_id(self, name: str | None) -> int | None:
        if name is None:
            return None
        return (await asyncio.to_thread(self.store.elements.get, name)).id

    async def _operated(
        self, event: str, verb: str, found: dict[str, int], by: str | None
    ) -> dict[str, int]:
        if not found:
            raise InvalidRequest(f"no distribution to be {verb} matched")
        for name, count in found.items():
            await self.manager.emit_event(
                event,
                name,
                details={"count": count, "by": by},
                text=f"{count} failed distributions to {name} {verb}" + (f" by {by}" if by else ""),
            )
        await self.dispatcher.recount()
        for element in await self._elements():
            if element.name in found:
                await self._refresh_errors(element.id, element.name)
                self.dispatcher.wake(element.id)
        return found

    # ------------------------------------------------------------------ device data
    async def _register_device_data(self, element_id: int) -> None:
        """Register for notifications, then take the element's phones as they are now."""
        element = await asyncio.to_thread(self.store.elements.by_id, element_id)
        if element is None:
            return
        try:
            async with await self._open(element) as connector:
                await connector.register_device_data()
            stations = await self._stations(element)
        except ProvsyncError as exc:
            logger.warning("could not register with {} for device data: {}", element.name, exc)
            return
        await asyncio.to_thread(self.store.devices.store, element.id, stations, replace=True)
        await asyncio.to_thread(self.store.elements.set_state, element.id, device_data=True)
        await self._announce_device_data()

    async def _stations(self, element: Element) -> list[tuple[str, Data | None]]:
        stations: list[tuple[str, Data | None]] = []
        async with await self._open(element) as connector:
            async for page in connector.pages("station", limit=self.sync.page_size):
                stations += [(o.key, o.data) for o in page.objects]
        return stations

    async def _announce_device_data(self) -> None:
        names = [e.name for e in await self._elements() if e.sharing and e.device_data]
        await self.manager.emit_event(
            "device-data-notification",
            HUB,
            details={"elements": names},
            text="the hub is registered for device data with "
            + (", ".join(names) if names else "no element")
            + ": phones on them have full details, others only a directory number",
        )

    async def device_notification(self, ident: str, devices: list[dict[str, Any]]) -> int:
        element = await asyncio.to_thread(self.store.elements.find, ident)
        if not element.device_data:
            raise SharingError(f"the hub is not registered with {element.name} for device data")
        items = []
        for device in devices:
            number, data = str(device.get("number", "")), device.get("data")
            if not number or not (data is None or isinstance(data, dict)):
                raise InvalidRequest("each device needs a number and data (an object or null)")
            items.append((number, data))
        return await asyncio.to_thread(self.store.devices.store, element.id, items)

    async def device_sync(self) -> None:
        self._spawn(self._device_sync(), "device-data-sync")

    async def _device_sync(self) -> None:
        elements = [e for e in await self._elements() if e.type != MESSAGING]
        await self.manager.emit_event(
            "device-data-sync-started",
            HUB,
            details={"elements": [e.name for e in elements]},
            text=f"device-data sync with {len(elements)} elements started",
        )
        counts: dict[str, Any] = {}
        for element in elements:
            try:
                stations = await self._stations(element)
                counts[element.name] = await asyncio.to_thread(
                    self.store.devices.store, element.id, stations, replace=True
                )
            except ProvsyncError as exc:
                counts[element.name] = f"failed: {exc}"
        await self.manager.emit_event(
            "device-data-sync-completed",
            HUB,
            details=counts,
            text="device-data sync completed: "
            + ", ".join(f"{name} {count}" for name, count in counts.items()),
        )

    async def devices(self) -> list[dict[str, Any]]:
        numbers = await asyncio.to_thread(self.store.shared.load, ["directory-number"])
        details = await asyncio.to_thread(self.store.devices.details)
        names = {e.id: e.name for e in await self._elements()}
        listed = []
        for _, number in sorted(numbers):
            found = details.get(number)
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

    # ------------------------------------------------------------------ messaging elements
    async def element_updated(self, name: str, how: str) -> None:
        """A network element changed: messaging elements programmed with it need activation."""
        for element in await self._elements():
            if element.type == MESSAGING and name in element.uses:
                await self.manager.raise_alarm(
                    "element-updated-activation-required",
                    element.name,
                    qualifier=name,
                    text=f"network element {name}, which {element.name} is programmed with, "
                    f"was {how}; activate {element.name}",
                )

    async def activate(self, name: str) -> dict[str, Any]:
        element = await asyncio.to_thread(self.store.elements.get, name)
        if element.type != MESSAGING:
            raise InvalidRequest(
                f"{name} is a {element.type}; only messaging elements are activated"
            )
        known = {e.name: e for e in await self._elements()}
        programming = [
            {
                "name": n,
                "address": known[n].address,
                "type": known[n].type,
                "software_version": known[n].software_version,
            }
            for n in element.uses
            if n in known
        ]
        async with await self._open(element) as connector:
            await connector.activate(programming)
        for _, resource, qualifier in self.manager.active_keys(
            "element-updated-activation-required"
        ):
            if resource == name:
                await self._clear(
                    "element-updated-activation-required", name, qualifier, "activation performed"
                )
        return {"activated": name, "elements": programming}

    async def forget(self, element: Element) -> None:
        """The element is being removed: its sync stops, its records go."""
        running = self._syncs.pop(element.id, None)
        if running is not None:
            task, job = running
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(
                self.store.jobs.update,
                job,
                state="failed",
                ended_at=clock.now(),
                error="the element was removed",
            )
        await self.dispatcher.forget(element.id)

        def work() -> None:
            with self.store.begin() as conn:
                self.store.drop_sharing_records(conn, element.id)

        await asyncio.to_thread(work)
        await self.element_updated(element.name, "removed")

    # ------------------------------------------------------------------ status
    async def status(self) -> dict[str, Any]:
        elements = await self._elements()
        counts = await asyncio.to_thread(self.store.distributions.open_counts)
        state = self.group_state()
        return {
            "state": state if any(e.sharing for e in elements) else "notSharing",
            "blocked": self.blocked(),
            "ftp_inactive": self.manager.is_active("ftp-inactive", HUB),
            "min_element_version": self.settings.min_element_version,
            "reconcile_running": self._reconcile_running(),
            "sync_running": self._sync_running,
            "conflicts": await asyncio.to_thread(self.store.conflicts.counts),
            "elements": [
                {
                    "name": e.name,
                    "type": e.type,
                    "sharing": state if e.sharing else "notSharing",
                    "device_data": e.device_data,
                    "pending": counts.get(e.id, {}).get("pending", 0)
                    + counts.get(e.id, {}).get("inflight", 0),
                    "errors": counts.get(e.id, {}).get("failed", 0),
                }
                for e in elements
            ],
        }


def _overwrite(
    cls: str, key: str, other_key: str, before: Data | None, after: Data | None
) -> list[Change]:
    """The changes that give one side ``after`` under ``key`` where it held ``before``; for a
    pair (two keys, one record) its record under ``other_key`` goes first."""
    if key == other_key:
        return [Change(cls, key, element_op(before, after), after)]
    return [
        Change(cls, other_key, "delete", None),
        Change(cls, key, element_op(None, after), after),
    ]


def _checked(classes: tuple[str, ...], cls: str, key: str, op: str, data: object) -> Change:
    if cls not in classes:
        raise InvalidRequest(f"{cls!r} is not a shared class ({', '.join(classes)})")
    if not key or len(key) > 128:
        raise InvalidRequest("key must be 1 to 128 characters")
    if op not in OPS:
        raise InvalidRequest(f"op must be one of {', '.join(OPS)}")
    if op == "delete":
        return Change(cls, key, op, None)
    if not isinstance(data, dict):
        raise InvalidRequest(f"{op} of {cls} {key} needs data (an object)")
    return Change(cls, key, op, data)
