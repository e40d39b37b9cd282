"""What the components that change the hub's data share, handed to each in one value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from agent.alarms.ports import AlarmSink
from agent.sharing.distribution import Dispatcher
from agent.sharing.gate import Gate
from agent.store.access import StoreAccess


@dataclass(frozen=True, slots=True)
class HubParts:
    """The store, the alarm sink, the gate (its hub lock), the dispatcher (recounted and
    woken after writes) and the wall clock of the records written."""

    store: StoreAccess
    alarms: AlarmSink
    gate: Gate
    dispatcher: Dispatcher
    clock: Callable[[], datetime]


class HubComponent:
    """Base of the components handed :class:`HubParts`: each part as an attribute."""

    def __init__(self, parts: HubParts) -> None:
        self._store = parts.store
        self._alarms = parts.alarms
        self._gate = parts.gate
        self._dispatcher = parts.dispatcher
        self._clock = parts.clock
