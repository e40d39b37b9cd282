"""The simulated element's data: objects by class, a change log with retention and epoch."""

from __future__ import annotations

import bisect
import random
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.errors import SimulatorError

PROVISIONING_CLASSES = ("user", "station", "directory-number", "group", "mailbox")
SYSTEM_CLASSES = ("system-parameter", "dial-plan", "cabinet", "board")
"""The element's own configuration (some of it asks the hub for an initialization when
it changes: ``[sync] full_init_objects``)."""
CLASSES = PROVISIONING_CLASSES + SYSTEM_CLASSES
OPS = ("create", "update", "delete")
FIRST_NAMES = (
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Radia",
    "Ken",
    "Frances",
    "Dennis",
    "Margaret",
    "John",
    "Sophie",
    "Tim",
    "Vint",
    "Leslie",
)
LAST_NAMES = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Perlman",
    "Thompson",
    "Allen",
    "Ritchie",
    "Hamilton",
    "McCarthy",
    "Wilson",
    "Cerf",
)


@dataclass
class Change:
    seq: int
    time: datetime
    user: str
    op: str
    cls: str
    key: str
    data: dict[str, Any] | None
    notify_sync: bool = False
    """CM notify sync processed it: the hub applied it when it was made."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "user": self.user,
            "op": self.op,
            "class": self.cls,
            "key": self.key,
            "data": self.data,
            "notify_sync": self.notify_sync,
        }


@dataclass
class RejectRule:
    cls: str
    key_prefix: str
    reason: str


@dataclass
class ElementState:
    element_id: str
    type: str
    software_version: str = "10.2.1"
    retention: int = 100_000
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
    log: deque[Change] = field(default_factory=deque)
    last_seq: int = 0
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex)
    reject_rules: list[RejectRule] = field(default_factory=list)
    sharing: bool = False
    """Start sharing with the hub succeeded: local changes are pushed to it."""
    device_data: bool = False
    """The hub registered for device-data notifications."""
    activations: list[list[dict[str, Any]]] = field(default_factory=list)
    """Messaging elements: the programming received at each activation."""
    notify_sync: bool = False
    """CM notify sync is on: each local change is sent to the hub as it is made."""

    def __post_init__(self) -> None:
        for cls in CLASSES:
            self.objects.setdefault(cls, {})
            self.keys.setdefault(cls, [])

    # ------------------------------------------------------------------ data
    def generate(self, count: int, seed: int) -> None:
        """Realistic provisioning data, the same for the same seed."""
        rng = random.Random(seed)  # noqa: S311 - made-up test data, not a secret
        users = max(1, int(count * 0.3))
        for index in range(users):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            login = f"{first[0].lower()}{last.lower()}{index:05d}"
            number = str(20000 + index)
            self._put(
                "user",
                login,
                {
                    "login": login,
                    "name": f"{first} {last}",
                    "email": f"{login}@example.com",
                    "number": number,
                },
            )
            self._put(
                "directory-number",
                number,
                {"number": number, "user": login, "class_of_service": rng.randint(1, 8)},
            )
            self._put(
                "station",
                number,
                {
                    "number": number,
                    "type": rng.choice(["9608", "9611", "J179", "SIP softphone"]),
                    "port": f"S{index:05d}",
                },
            )
        for index in range(max(0, count - 3 * users)):
            kind = rng.choice(("group", "mailbox"))
            key = f"{kind[0]}{index:05d}"
            if kind == "group":
                self._put(
                    "group",
                    key,
                    {
                        "name": f"hunt group {index}",
                        "members": [str(20000 + rng.randrange(users)) for _ in range(3)],
                    },
                )
            else:
                number = str(20000 + rng.randrange(users))
                self._put("mailbox", key, {"number": number, "cos": rng.randint(1, 4)})
        self._put("system-parameter", "features", {"trunk_to_trunk": False})
        self._put("dial-plan", "main", {"prefixes": {"2": "extension", "9": "trunk"}})
        self._put("cabinet", "1", {"location": "main site"})
        self._put("board", "1A01", {"type": "TN2602AP"})

    def _put(self, cls: str, key: str, data: dict[str, Any]) -> None:
        if key not in self.objects[cls]:
            bisect.insort(self.keys[cls], key)
        self.objects[cls][key] = data

    def _remove(self, cls: str, key: str) -> None:
        if self.objects[cls].pop(key, None) is not None:
            keys = self.keys[cls]
            del keys[bisect.bisect_left(keys, key)]

    def counts(self) -> dict[str, int]:
        return {cls: len(self.objects[cls]) for cls in CLASSES}

    # ------------------------------------------------------------------ changes
    def change(self, user: str, op: str, cls: str, key: str, data: dict[str, Any] | None) -> Change:
        if cls not in CLASSES:
            raise SimulatorError(422, "unknown-class", f"no object class {cls!r}")
        if op not in OPS:
            raise SimulatorError(422, "unknown-op", f"op must be one of {', '.join(OPS)}")
        exists = key in self.objects[cls]
        if op == "create" and exists:
            raise SimulatorError(409, "exists", f"{cls} {key} exists")
        if op in ("update", "delete") and not exists:
            raise SimulatorError(409, "missing", f"no {cls} {key}")
        if op == "delete":
            self._remove(cls, key)
            data = None
        else:
            if not isinstance(data, dict):
                raise SimulatorError(422, "bad-data", "data must be an object")
            self._put(cls, key, data)
        self.last_seq += 1
        entry = Change(self.last_seq, datetime.now(UTC), user, op, cls, key, data)
        self.log.append(entry)
        while len(self.log) > self.retention:
            self.log.popleft()
        return entry

    def apply_update(
        self, user: str, op: str, cls: str, key: str, data: dict[str, Any] | None
    ) -> Change:
        for rule in self.reject_rules:
            if rule.cls in (cls, "*") and key.startswith(rule.key_prefix):
                raise SimulatorError(409, "rejected", rule.reason)
        # Replays are accepted without a change (a sender may resend after a crash): a create
        # of what exists with the same data, a delete of what is gone.
        existing = self.objects.get(cls, {}).get(key)
        if (op == "create" and existing is not None and existing == data) or (
            op == "delete" and cls in self.objects and existing is None
        ):
            return Change(self.last_seq, datetime.now(UTC), user, op, cls, key, data)
        return self.change(user, op, cls, key, data)

    def changes_after(self, after: int, epoch: str | None, limit: int) -> list[Change]:
        if epoch is not None and epoch != self.epoch:
            raise SimulatorError(410, "cursor-gone", "the element's data epoch changed")
        first = self.log[0].seq if self.log else self.last_seq + 1
        if after < first - 1:
            raise SimulatorError(410, "cursor-gone", "the change log no longer reaches there")
        if after > self.last_seq:
            raise SimulatorError(410, "cursor-gone", "the cursor is ahead of the change log")
        start = after - first + 1
        return [self.log[i] for i in range(max(start, 0), min(start + limit, len(self.log)))]

    # ------------------------------------------------------------------ snapshots
    def snapshot_token(self) -> str:
        return f"{self.epoch}:{self.last_seq}"

    def check_snapshot(self, token: str) -> None:
        epoch, _, seq = token.partition(":")
        if epoch != self.epoch or not seq.isdigit():
            raise SimulatorError(410, "snapshot-gone", "the snapshot's epoch is gone")

    def page(
        self, cls: str, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        if cls not in CLASSES:
            raise SimulatorError(404, "unknown-class", f"no object class {cls!r}")
        keys = self.keys[cls]
        start = bisect.bisect_right(keys, after) if after is not None else 0
        chosen = keys[start : start + limit]
        items = [{"key": key, "data": self.objects[cls][key]} for key in chosen]
        more = start + limit < len(keys)
        return items, (chosen[-1] if more and chosen else None)

    # ------------------------------------------------------------------ admin
    def reset_epoch(self) -> None:
        self.epoch = uuid.uuid4().hex
        self.log.clear()
        self.last_seq = 0
