"""Token buckets: the pace of traps to a receiver and the budget of unauthenticated work.

One refill rule for both: tokens come back at ``rate`` a second up to ``burst``. The trap
path spends them by the chunk (agent.export.snmp.trap_path.Pace); the SNMP screens one
per unauthenticated SNMPv3 message, per sender and in all (:class:`SenderBudget`,
agent.export.snmp.screen).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

DISCOVERY_RATE = 50.0
"""Unauthenticated v3 messages (discovery, and the ones answered with an RFC 3414 report)
a second handed to pysnmp from all senders together (a burst of as many is allowed). Each
costs pysnmp about a millisecond, so without a bound a flood of tiny ones pins the agent."""
SENDER_RATE = 5.0
SENDER_BURST = 10.0
"""The same, per sender host: a manager sends one discovery per session (net-snmp's
tools: one per invocation), so one flooding host cannot use up everyone's budget."""
MAX_SENDERS = 1024
"""Sender hosts whose bucket is kept (least recently seen forgotten first)."""


class TokenBucket:
    """At most ``rate`` a second on average, ``burst`` at once.

    Args:
        clock: monotonic seconds (injected by tests).

    Raises:
        ValueError: the rate is not positive or the burst below 1.
    """

    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def allowance(self) -> int:
        """How many may go now."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self._tokens)

    def spend(self, count: int) -> None:
        self._tokens -= count

    def wait(self) -> float:
        """Seconds until the next one may go."""
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def allow(self) -> bool:
        """One may go now (and is counted)."""
        if self.allowance() < 1:
            return False
        self._tokens -= 1
        return True


class SenderBudget:
    """Per-sender token buckets (a bounded table, least recently seen first out) under a
    global one: :meth:`refuse` says why a message is over budget, or "" to allow it.

    A host that is forgotten and comes back starts with a full bucket: the global bucket
    still bounds what many (possibly spoofed) senders cost together.
    """

    def __init__(
        self,
        rate: float = SENDER_RATE,
        burst: float = SENDER_BURST,
        global_rate: float = DISCOVERY_RATE,
        max_senders: int = MAX_SENDERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._burst = burst
        self._max = max_senders
        self._clock = clock
        self.overall = TokenBucket(global_rate, global_rate, clock=clock)
        self._senders: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._senders)

    def refuse(self, sender: str) -> str:
        bucket = self._senders.get(sender)
        if bucket is None:
            bucket = TokenBucket(self.rate, self._burst, clock=self._clock)
            self._senders[sender] = bucket
            if len(self._senders) > self._max:
                self._senders.popitem(last=False)
        else:
            self._senders.move_to_end(sender)
        if not bucket.allow():
            return f"more than {self.rate:g} a second from this sender"
        if not self.overall.allow():
            return f"more than {self.overall.rate:g} a second in all"
        return ""
