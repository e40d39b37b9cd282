"""The root of the settings: every section, and the checks that span sections."""

from __future__ import annotations

import itertools
from pathlib import Path

from pydantic import Field, model_validator

from agent.config.alarm_types import AlarmTypeSettings
from agent.config.exporters import ExporterSettings
from agent.config.sections import (
    AgentSettings,
    ApiSettings,
    ClusterSettings,
    RetentionSettings,
    SharingSettings,
    StoreSettings,
    SyncSettings,
)
from agent.config.snmp import SnmpSettings
from agent.config.syslog import SyslogSettings
from agent.config.values import Section, check_unique


class Settings(Section):
    agent: AgentSettings = AgentSettings()
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    retention: RetentionSettings = RetentionSettings()
    exporters: ExporterSettings = ExporterSettings()
    snmp: SnmpSettings = SnmpSettings()
    syslog: SyslogSettings = SyslogSettings()
    sync: SyncSettings = SyncSettings()
    sharing: SharingSettings = SharingSettings()
    cluster: ClusterSettings = ClusterSettings()
    alarm_types: tuple[AlarmTypeSettings, ...] = ()
    source: Path | None = Field(default=None, exclude=True)
    """The file these settings came from (None: built-in defaults)."""

    @model_validator(mode="after")
    def _unique_targets(self) -> Settings:
        # Every export target keeps its cursor under its name: names must not collide.
        check_unique(
            "export target names",
            itertools.chain(
                (f.target_name for f in self.exporters.file),
                (t.target_name for t in self.snmp.targets),
                (c.target_name for c in self.syslog.collectors),
            ),
        )
        return self

    @model_validator(mode="after")
    def _unique_types(self) -> Settings:
        check_unique("alarm type ids", (t.id for t in self.alarm_types))
        return self

    @model_validator(mode="after")
    def _cluster_store(self) -> Settings:
        if self.cluster.enabled and self.store_url.startswith("sqlite"):
            raise ValueError(
                "[cluster] enabled = true: SQLite stays single-agent; a cluster needs a "
                "PostgreSQL store ([store] url)"
            )
        return self

    @property
    def data_dir(self) -> Path:
        return self.agent.data_dir

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_dir / 'provsync.db'}"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "api.token"

    @property
    def element_token_file(self) -> Path:
        return self.data_dir / "element.token"

    @property
    def store_key_file(self) -> Path:
        return self.exporter_path(Path(self.store.key_file or "secret.key"))

    def exporter_path(self, path: Path) -> Path:
        return path if path.is_absolute() else self.data_dir / path
