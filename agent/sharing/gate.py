"""Who may change the hub's shared data now: the blocking alarms, the running sync.

While sync-required or sync-reconcile-required is active, hub changes are refused and
nothing is distributed; while a sync from an element runs, that element's pushes wait
for the next sync. Syncs, pushes, reconcile and hub changes all take :attr:`Gate.hub_lock`
around their reads and writes of the hub, so their alarms never interleave.
"""

from __future__ import annotations

import asyncio

from agent.alarms.ports import AlarmSink
from agent.errors import SharingError
from agent.sharing.group import RECONCILE_REQUIRED, SYNC_REQUIRED, group_state
from agent.store.elements import Element

_WHY_BLOCKED = (
    (
        RECONCILE_REQUIRED,
        "conflicts found by a sync wait for reconcile "
        "(provsync sharing reconcile; GET /api/v1/sharing/conflicts)",
    ),
    (
        SYNC_REQUIRED,
        "an element started sharing and no sync to the hub has completed "
        "since (provsync sharing sync ELEMENT; POST /api/v1/sharing/sync)",
    ),
)


class Gate:
    """The sharing group's state and the refusals that follow from it.

    Args:
        alarms: where the blocking alarms are looked up.
    """

    def __init__(self, alarms: AlarmSink) -> None:
        self._alarms = alarms
        self.hub_lock = asyncio.Lock()
        self._sync_running: str | None = None

    @property
    def sync_running(self) -> str | None:
        """The element whose sync to the hub runs (one at a time), or None."""
        return self._sync_running

    def blocked(self) -> str:
        """Why hub changes may not be shared now ("" when they may)."""
        for type_id, why in _WHY_BLOCKED:
            keys = self._alarms.active_keys(type_id)
            if keys:
                names = ", ".join(sorted({resource for _, resource, _ in keys}))
                return f"{type_id} is active ({names}): {why}"
        return ""

    def reconcile_running(self) -> bool:
        return bool(self._alarms.active_keys(RECONCILE_REQUIRED))

    def group_state(self) -> str:
        return group_state(bool(self._alarms.active_keys(SYNC_REQUIRED)), self.reconcile_running())

    def check_hub_change(self) -> None:
        """Raises SharingError while hub changes are blocked (call it holding the lock:
        syncs raise their alarms holding it)."""
        reason = self.blocked()
        if reason:
            raise SharingError(f"flow-through provisioning is refused: {reason}")

    def claim_sync(self, element: Element) -> None:
        """Take the one sync slot for ``element``; release it with :meth:`release_sync`.

        Raises:
            SharingError: the element does not share, a reconcile is in progress, or a
                sync from an element runs.
        """
        if not element.sharing:
            raise SharingError(f"{element.name} does not share with the hub: start sharing first")
        if self.reconcile_running():
            raise SharingError(
                "a reconcile is in progress: resolve the open conflicts first "
                "(provsync sharing reconcile)"
            )
        if self._sync_running is not None:
            raise SharingError(
                f"a sync from {self._sync_running} is running; try again when it completes"
            )
        self._sync_running = element.name

    def release_sync(self) -> None:
        self._sync_running = None

    def push_refusal(self, element: Element) -> str:
        """Why a push from ``element`` is refused as a whole ("" when it is taken)."""
        if not element.sharing:
            return f"{element.name} does not share with the hub"
        if self.reconcile_running():
            return "a reconcile is running on the hub"
        if self._sync_running == element.name:
            return f"a sync from {element.name} is running; the next sync takes this change"
        return ""
