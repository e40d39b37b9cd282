"""The [exporters] section: delivery settings every target shares, the JSON-lines files.

Also the notification kinds that SNMP targets and syslog collectors filter on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from agent.alarms.severity import Severity
from agent.config.values import COUNT_MAX, Duration, Section, check_backoff, check_unique, within

NOTIFICATION_KINDS = ("alarm-raised", "alarm-changed", "alarm-cleared", "event", "heartbeat")


class FileExporterSettings(Section):
    path: Path
    """Relative paths are under the data directory."""
    name: str = ""
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1 << 40)
    backups: int = Field(default=5, ge=0, le=1000)
    min_severity: Severity = Severity.INDETERMINATE
    fsync: bool = True

    @property
    def target_name(self) -> str:
        return self.name or f"file:{self.path}"


class ExporterSettings(Section):
    backlog_threshold: int = Field(default=1000, ge=1, le=COUNT_MAX)
    batch_size: int = Field(default=500, ge=1, le=10000)
    retry_initial: Annotated[Duration, within("10ms", "1h")] = 1.0
    retry_max: Annotated[Duration, within("10ms", "1d")] = 60.0
    poll_interval: Annotated[Duration, within("10ms", "1h")] = 1.0
    deliver_timeout: Annotated[Duration, within("100ms", "1h")] = 30.0
    """Longest one open may take, and one delivery may go without progress (the deadline
    restarts at every acknowledged notification), before the attempt counts as failed."""
    down_reminder_interval: Annotated[Duration, within("100ms", "1d")] = 300.0
    """While a target stays down, one reminder line in the log this often."""
    file: tuple[FileExporterSettings, ...] = ()

    @model_validator(mode="after")
    def _backoff(self) -> ExporterSettings:
        check_backoff(self.retry_initial, self.retry_max)
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ExporterSettings:
        check_unique("exporter names", (f.target_name for f in self.file))
        return self
