"""Three-way compare of an element's data with the hub's, against their last agreed base.

Per object (E element, H hub, B base; None is absent):

- E == H: the sides agree; B becomes E.
- E == B: only the hub changed; the hub's value goes to the element.
- H == B: only the element changed; the element's value goes to the hub.
- otherwise both changed: when they changed different fields the merge is applied both
  ways and recorded as *automatic*; when they changed the same field differently, or one
  side deleted what the other changed, the conflict is *unresolved*.

Users new on one side are paired with users new on the other by directory number first,
then login id, then e-mail: such a pair is one person under two keys, recorded *for
review* (the operator decides; nothing is applied meanwhile).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.store.conflicts import Found
from agent.store.rows import Data, Key
from agent.store.shared_data import pairing_fields


@dataclass
class Plan:
    to_hub: list[tuple[str, str, Data | None]] = field(default_factory=list)
    """Element-side changes the hub takes (and shares with the other elements)."""
    to_element: list[tuple[str, str, str, Data | None]] = field(default_factory=list)
    """Hub-side values the element gets: (class, key, op, data)."""
    agreed: list[tuple[str, str, Data | None]] = field(default_factory=list)
    """New base values where both sides already agree."""
    found: list[Found] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        categories = {"automatic": 0, "review": 0, "unresolved": 0}
        for item in self.found:
            categories[item.category] += 1
        return {
            "to_hub": len(self.to_hub),
            "to_element": len(self.to_element),
            "agreed": len(self.agreed),
            **categories,
        }


def element_op(element: Data | None, value: Data | None) -> str:
    """The update that turns what the element holds into ``value``."""
    if value is None:
        return "delete"
    return "create" if element is None else "update"


def field_merge(hub: Data, element: Data, base: Data) -> Data | None:
    """Both sides' field changes together, or None when they touch a field differently."""
    merged = dict(base)
    for side, other in ((hub, element), (element, hub)):
        for name in set(side) | set(base):
            if side.get(name, _ABSENT) == base.get(name, _ABSENT):
                continue
            theirs = other.get(name, _ABSENT)
            if theirs != base.get(name, _ABSENT) and theirs != side.get(name, _ABSENT):
                return None
            if name in side:
                merged[name] = side[name]
            else:
                merged.pop(name, None)
    return merged


_ABSENT: Any = object()


def _both_changed(cls: str, key: str, h: Data | None, e: Data | None, b: Data | None) -> Found:
    if h is not None and e is not None and b is not None:
        merged = field_merge(h, e, b)
        if merged is not None:
            return Found(
                cls,
                key,
                key,
                "automatic",
                h,
                e,
                b,
                "both sides changed different fields; merged",
                merged,
            )
        return Found(
            cls, key, key, "unresolved", h, e, b, "both sides changed the same field differently"
        )
    if b is None:
        reason = "created on both sides with different data"
    elif e is None:
        reason = "deleted on the element, changed on the hub"
    else:
        reason = "deleted on the hub, changed on the element"
    return Found(cls, key, key, "unresolved", h, e, b, reason)


def _pairs(element: dict[Key, Data], hub: dict[Key, Data], base: dict[Key, Data]) -> dict[Key, Key]:
    """Element user key -> hub user key, for users new on the element and hub-only."""
    hub_only: dict[str, dict[str, str]] = {"number": {}, "login": {}, "email": {}}
    for (cls, key), data in hub.items():
        if cls == "user" and (cls, key) not in element:
            for name, value in pairing_fields(cls, key, data).items():
                if value is not None:
                    hub_only[name].setdefault(value, key)
    pairs: dict[Key, Key] = {}
    taken: set[str] = set()
    for (cls, key), data in element.items():
        if cls != "user" or (cls, key) in hub or (cls, key) in base:
            continue
        fields = pairing_fields(cls, key, data)
        for name in ("number", "login", "email"):
            value = fields[name]
            match = hub_only[name].get(value) if value is not None else None
            if match is not None and match not in taken:
                pairs[(cls, key)] = (cls, match)
                taken.add(match)
                break
    return pairs


def compare(
    element: dict[Key, Data],
    hub: dict[Key, Data],
    base: dict[Key, Data],
    classes: Iterable[str],
) -> Plan:
    shared = set(classes)
    plan = Plan()
    pairs = _pairs(element, hub, base)
    paired_hub = set(pairs.values())
    for (cls, key), hub_key in pairs.items():
        mine, theirs = element[(cls, key)], hub[hub_key]
        reason = next(
            f"same {name} {value}"
            for name, value in pairing_fields(cls, key, mine).items()
            if value is not None and value == pairing_fields(*hub_key, theirs).get(name)
        )
        plan.found.append(
            Found(
                cls,
                key,
                hub_key[1],
                "review",
                theirs,
                mine,
                None,
                f"{cls} {key} on the element and {hub_key[1]} on the hub "
                f"look like one record ({reason})",
            )
        )
    for item in sorted(set(element) | set(hub) | set(base)):
        cls, key = item
        if cls not in shared or item in pairs or item in paired_hub:
            continue
        e, h, b = element.get(item), hub.get(item), base.get(item)
        if e == h:
            if e != b:
                plan.agreed.append((cls, key, e))
        elif e == b:
            plan.to_element.append((cls, key, element_op(e, h), h))
        elif h == b:
            plan.to_hub.append((cls, key, e))
        else:
            found = _both_changed(cls, key, h, e, b)
            plan.found.append(found)
            if found.merged is not None:
                plan.to_hub.append((cls, key, found.merged))
                plan.to_element.append((cls, key, "update", found.merged))
    return plan
