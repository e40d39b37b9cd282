"""How long one inform may wait for its acknowledgement, with all its retries.

Kept below the configuration and the SNMP exporter so that the configuration can check
the bound (agent.config.SnmpTarget) without importing the exporter or pysnmp.
"""

from __future__ import annotations

MAX_INFORM_WAIT = 600.0
"""Seconds. One inform with all its retries waits at most this long: past it the
exporter's deliver timeout, backoff and down/back logging would be meaningless (a v2c
timeout of 10 minutes doubled on each of 20 retries is decades). Checked at config time."""

# Beyond a v3 target's own timeout * tries: one more round for engine discovery (the
# probe and a notInTimeWindow report), and slack for pysnmp's 0.1 s timer ticks on a
# busy event loop.
DISCOVERY_ROUNDS = 1
WAIT_SLACK = 2.0


def v2c_inform_wait(timeout: float, retries: int) -> float:
    """Seconds a v2c inform waits in all: ``timeout``, doubled on each retry."""
    return float(timeout * (2 ** (retries + 1) - 1))


def v3_inform_deadline(timeout: float, retries: int) -> float:
    """Seconds an SNMPv3 inform may take before the sender gives up on pysnmp."""
    return timeout * (retries + 1) * (1 + DISCOVERY_ROUNDS) + WAIT_SLACK
