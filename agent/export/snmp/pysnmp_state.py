"""The few places where the agent reaches into pysnmp 7's private state, kept together.

pysnmp caches what it discovered about a receiver's engine in two places: the v3
message-processing model keeps (engine ID, context) per transport address, with an
expiry queue that removes each entry 300 s after it was learned; USM keeps the
receiver's boots and time per engine ID. The expiry of the first one deletes without
checking, so an entry removed by anyone else must leave its expiry queue too: otherwise
the delete raises KeyError inside the dispatcher's timer task, which ends that task, and
from then on no request ever times out or is sent again (an inform waits forever).

Every access is guarded: when a pysnmp release renames these attributes the functions
do nothing and say so in their result, and delivery still works (a stale cache then
costs one failed attempt, not a hang: the sender bounds its own wait).
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

_MP_CACHE = "_SnmpV3MessageProcessingModel__engineIdCache"
_MP_EXPIRY = "_SnmpV3MessageProcessingModel__engineIdCacheExpQueue"
_USM_TIMELINE = "_SnmpUSMSecurityModel__timeline"
_NTF_PENDING = "_NotificationOriginator__pendingReqs"
_NTF_NOTIFICATIONS = "_NotificationOriginator__pendingNotifications"
V3_MESSAGE_PROCESSING = 3

PeerKey = tuple[tuple[int, ...], tuple[str, int]]


def forget_peer(engine: Any, key: PeerKey) -> bool:
    """Drop the cached engine ID of the receiver at ``key`` (domain, address) and its
    boots and time, so the next message rediscovers it. True when something was dropped."""
    processing = engine.message_processing_subsystems.get(3)
    cache = getattr(processing, _MP_CACHE, None)
    expiry = getattr(processing, _MP_EXPIRY, None)
    if not isinstance(cache, dict) or not isinstance(expiry, dict):
        return False
    for keys in expiry.values():
        # The same address may be queued more than once (learned, dropped, relearned).
        while key in keys:
            keys.remove(key)
    entry = cache.pop(key, None)
    security = engine.security_models.get(3)
    timeline = getattr(security, _USM_TIMELINE, None)
    if isinstance(entry, dict) and isinstance(timeline, dict):
        # USM's own expiry checks before it deletes: dropping an entry here is safe.
        timeline.pop(entry.get("securityEngineId"), None)
    return entry is not None


def abandon_informs(engine: Any, originator: Any) -> int | None:
    """Stop pysnmp from retransmitting what ``originator`` still waits an answer for.

    pysnmp 7 has no call to cancel a notification: its originator keeps each request
    (keyed by the send-PDU handle of its latest try) and sends it again when the
    dispatcher's cache times it out, until its retries (and up to four discovery
    retries) are spent. An inform the agent gave up on would reach the receiver late,
    after the ones that followed. Releasing each handle with the dispatcher's public
    ``release_state_information`` removes the timeout that drives the retransmission;
    the originator's own entries are dropped with it, and the dispatcher's job count
    kept balanced. An answer that still arrives finds no request and is counted by
    pysnmp as snmpUnknownPDUHandlers.

    Only safe between sends: each V3Sender has its own originator and one inform at a
    time. The number of requests abandoned; None when pysnmp's attributes moved.
    """
    pending = getattr(originator, _NTF_PENDING, None)
    if not isinstance(pending, dict):
        return None
    dispatcher = engine.message_dispatcher
    abandoned = 0
    for handle in list(pending):
        del pending[handle]
        dispatcher.release_state_information(engine, handle, V3_MESSAGE_PROCESSING)
        engine.transport_dispatcher.job_finished(id(originator))
        abandoned += 1
    notifications = getattr(originator, _NTF_NOTIFICATIONS, None)
    if isinstance(notifications, dict):
        notifications.clear()
    return abandoned


def keep_timer_running(engine: Any) -> bool:
    """Restart pysnmp's dispatcher timer task if it died, logging why (once per death).

    That task drives every request timeout and retransmission; pysnmp does not notice
    when it ends. True when it had to be restarted.
    """
    dispatcher = getattr(engine, "transport_dispatcher", None)
    task = getattr(dispatcher, "loopingcall", None)
    if not isinstance(task, asyncio.Future) or not task.done() or task.cancelled():
        return False
    reason = task.exception()  # retrieved, so asyncio does not report it again at exit
    if reason is None:
        return False  # ended by a cancellation pysnmp asked for (closing the dispatcher)
    logger.error(
        "pysnmp timer stopped ({!r}): SNMP requests had no timeouts or retries; restarted it",
        reason,
    )
    assert dispatcher is not None
    dispatcher.loopingcall = asyncio.ensure_future(dispatcher.handle_timeout())
    return True
