"""What a sync decided (agent.sharing.merge.Plan), written in one transaction."""

from __future__ import annotations

from datetime import datetime

from agent.errors import InvalidRequest
from agent.sharing.merge import Plan, element_op
from agent.sharing.sink import HUB
from agent.store.access import StoreAccess
from agent.store.conflicts import Found
from agent.store.elements import Element
from agent.store.rows import Data, Key
from agent.store.shared_data import Change


def apply_plan(
    store: StoreAccess,
    element: Element,
    plan: Plan,
    hub: dict[Key, Data],
    base: dict[Key, Data],
    epoch: str,
    at: datetime,
) -> None:
    """Everything a sync decided, in one transaction (blocking: run it in a thread).

    An element-side change that would give two users one directory number or e-mail
    address is not taken: it becomes an unresolved conflict (``plan`` is updated).
    """
    with store.begin() as conn:
        others = store.elements.sharing_targets(conn, exclude=element.id)
        store.conflicts.close_open_for(conn, element.id, "superseded")
        if epoch != element.sharing_epoch:
            if element.sharing_epoch:  # the old base was not used: it goes
                store.bases.drop(conn, element.id)
            store.elements.update(conn, element.id, sharing_epoch=epoch)
        changes, taken = [], []
        for cls, key, data in plan.to_hub:
            change = Change(cls, key, element_op(hub.get((cls, key)), data), data)
            try:
                store.shared.check_unique(conn, change)
            except InvalidRequest as exc:
                _not_taken(plan, hub, base, cls, key, data, str(exc))
                continue
            store.shared.write(conn, [change], element.name, at)
            changes.append(change)
            taken.append((cls, key, data))
        plan.to_hub = taken
        store.distributions.add(conn, others, changes, element.name, at)
        store.bases.set(conn, element.id, plan.to_hub + plan.agreed)
        to_element = [Change(cls, key, op, data) for cls, key, op, data in plan.to_element]
        store.distributions.add(conn, [(element.id, element.name)], to_element, HUB, at)
        store.conflicts.add(conn, element.id, element.name, plan.found, at)


def _not_taken(
    plan: Plan,
    hub: dict[Key, Data],
    base: dict[Key, Data],
    cls: str,
    key: str,
    data: Data | None,
    reason: str,
) -> None:
    """A merge that would break uniqueness is not applied either way: it is unresolved."""
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
            reason,
        )
    )
