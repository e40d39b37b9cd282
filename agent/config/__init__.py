"""Configuration: TOML read with ``tomllib`` into validated, frozen settings.

Every section and key, with its default, is documented in ``etc/provsync.toml``. Unknown
keys, wrong types and bad values raise :class:`ConfigError` naming the file, the key path
and what was expected; the CLI turns that into exit status 2.

The modules hold one concern each: ``values`` (addresses, durations, limits, the section
base), ``sections`` (agent, store, API, retention, sync, sharing, cluster), ``exporters``,
``snmp``, ``syslog``, ``alarm_types``, ``settings`` (the root and its cross-section checks),
``loading`` (finding, reading, validating, error messages) and ``document`` (what
``config init`` writes). Every public name is re-exported here: importers use
``agent.config`` only.
"""

from agent.config.alarm_types import AlarmTypeSettings
from agent.config.document import default_document
from agent.config.exporters import NOTIFICATION_KINDS, ExporterSettings, FileExporterSettings
from agent.config.loading import (
    CONFIG_MAX_BYTES,
    ENV_CONFIG,
    ENV_DATA_DIR,
    SEARCH_PATHS,
    find_config,
    load_settings,
    read_token_file,
    settings_from_dict,
)
from agent.config.sections import (
    NODE_PATTERN,
    AgentSettings,
    ApiSettings,
    ClusterSettings,
    RetentionSettings,
    SharingSettings,
    StoreSettings,
    SyncSettings,
    default_node,
)
from agent.config.settings import Settings
from agent.config.snmp import (
    AUTH_PROTOCOLS,
    PRIV_PROTOCOLS,
    SnmpCommunity,
    SnmpSettings,
    SnmpTarget,
    SnmpUser,
)
from agent.config.syslog import (
    SYSLOG_PORTS,
    UDP_MAX_MESSAGE,
    UDP_MIN_MESSAGE,
    AgentLogSyslog,
    SyslogCollector,
    SyslogSettings,
)
from agent.config.values import (
    COUNT_MAX,
    Duration,
    check_backoff,
    check_unique,
    parse_address,
    within,
)

# Importers have long taken these two from here; they live in errors and durations.
from agent.durations import format_duration, parse_duration
from agent.errors import ConfigError

__all__ = [
    "AUTH_PROTOCOLS",
    "CONFIG_MAX_BYTES",
    "COUNT_MAX",
    "ENV_CONFIG",
    "ENV_DATA_DIR",
    "NODE_PATTERN",
    "NOTIFICATION_KINDS",
    "PRIV_PROTOCOLS",
    "SEARCH_PATHS",
    "SYSLOG_PORTS",
    "UDP_MAX_MESSAGE",
    "UDP_MIN_MESSAGE",
    "AgentLogSyslog",
    "AgentSettings",
    "AlarmTypeSettings",
    "ApiSettings",
    "ClusterSettings",
    "ConfigError",
    "Duration",
    "ExporterSettings",
    "FileExporterSettings",
    "RetentionSettings",
    "Settings",
    "SharingSettings",
    "SnmpCommunity",
    "SnmpSettings",
    "SnmpTarget",
    "SnmpUser",
    "StoreSettings",
    "SyncSettings",
    "SyslogCollector",
    "SyslogSettings",
    "check_backoff",
    "check_unique",
    "default_document",
    "default_node",
    "find_config",
    "format_duration",
    "load_settings",
    "parse_address",
    "parse_duration",
    "read_token_file",
    "settings_from_dict",
    "within",
]
