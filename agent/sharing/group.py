"""The sharing group's state, from its two blocking alarms (docs/sharing.md).

One pure function, so the sharing service (from the alarm manager's active keys) and the
SNMP view (from the alarms its commit feed shows) compute the same state the same way.
"""

from __future__ import annotations

SYNC_REQUIRED = "sync-required"
"""Raised when an element starts sharing; any completed sync to the hub clears it."""
RECONCILE_REQUIRED = "sync-reconcile-required"
"""Raised by a sync that found unresolved conflicts; cleared when none is left."""
BLOCKING_ALARMS = (SYNC_REQUIRED, RECONCILE_REQUIRED)
"""Alarm types that block hub changes and set the group's state, in precedence order."""
NOT_SHARING = "notSharing"
"""What an element that does not share shows (the group's state is not its own)."""


def group_state(sync_required: bool, reconcile_required: bool) -> str:
    """The state every sharing element shows: syncRequired, reconcileRequired or sharing."""
    if sync_required:
        return "syncRequired"
    if reconcile_required:
        return "reconcileRequired"
    return "sharing"
