"""What an exporter says about its own delivery: the export-gap notice it sends the target
when retention purged entries before it got them, and its exporter-backlog alarm."""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger

from agent.alarms.catalog import Catalog
from agent.alarms.ports import AlarmSink
from agent.alarms.records import Notification, NotificationKind
from agent.errors import AlarmNotFound, ProvsyncError
from agent.store.outage import is_store_outage

BACKLOG_ALARM = "exporter-backlog"
GAP_EVENT = "export-gap"


class GapNotices:
    """The export-gap notices of target ``name``, each range logged once (not per retry)."""

    def __init__(self, name: str, catalog: Catalog) -> None:
        self.name = name
        self.catalog = catalog
        self._logged: tuple[int, int] | None = None

    def notice(self, first: int, last: int, batch: Sequence[Notification]) -> Notification:
        """Says in words what the sequence jump shows: entries ``first``-``last`` were
        purged by retention before this target got them. Numbered ``last`` (the target
        never received that entry), so the notice is in order and the jump stays visible."""
        name = self.name
        lost = f"{first}-{last}" if first != last else f"{first}"
        text = (
            f"target {name} lost notifications {lost} (purged by retention before "
            f"delivery); the next one is {batch[0].seq}"
        )
        if self._logged != (first, last):  # once, not once per retry
            self._logged = (first, last)
            logger.warning(
                "export target {} skips notifications {}: purged before delivery", name, lost
            )
        gap_type = self.catalog.get(GAP_EVENT)
        return Notification(
            seq=last,
            at=batch[0].at,
            kind=NotificationKind.EVENT,
            alarm_id=0,
            type_id=GAP_EVENT,
            resource=name,
            qualifier="",
            severity=gap_type.severity.value,
            text=text,
            raise_seq=0,
            payload={
                "type_name": gap_type.name,
                "event_type": gap_type.event_type.value,
                "probable_cause": gap_type.probable_cause,
                "details": {"target": name, "first_lost": first, "last_lost": last},
            },
        )


class BacklogAlarm:
    """Target ``name``'s exporter-backlog alarm: raised past ``threshold`` notifications
    behind, cleared at half of it. Its state changes only once the store took the raise
    or clear: while the store is fenced or down, the next check tries again."""

    def __init__(self, name: str, alarms: AlarmSink, threshold: int) -> None:
        self.name = name
        self.alarms = alarms
        self.threshold = threshold
        self.active = False

    def recall(self) -> None:
        """A backlog alarm raised before a restart is still ours to clear."""
        self.active = self.alarms.is_active(BACKLOG_ALARM, self.name)

    async def check(self, behind: int) -> None:
        try:
            if not self.active and behind > self.threshold:
                await self.alarms.raise_alarm(
                    BACKLOG_ALARM,
                    self.name,
                    text=f"export target {self.name} is {behind} notifications behind",
                )
                self.active = True
            elif self.active and behind <= self.threshold // 2:
                await self.alarms.clear(type_id=BACKLOG_ALARM, resource=self.name)
                self.active = False
        except AlarmNotFound:
            self.active = False  # cleared by someone else: nothing left to clear
        except Exception as exc:
            if not isinstance(exc, ProvsyncError) and not is_store_outage(exc):
                raise
            logger.debug("backlog alarm for {} not changed: {}", self.name, exc)
