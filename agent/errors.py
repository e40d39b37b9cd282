"""The exceptions provsync raises.

Library exceptions are translated at the boundary (``raise ... from exc``); only the CLI
turns these into messages and exit codes, and the control API into HTTP statuses.

::

    ProvsyncError
     +-- ConfigError            bad configuration file, key or value
     +-- StoreError             the store cannot be opened, migrated or written
     |    +-- StoreLockedError  another agent owns this store
     +-- AlarmError             a request the alarm manager refuses
     |    +-- UnknownAlarmType  no such type in the catalog or the site's config
     |    +-- AlarmNotFound     no such alarm (id or key)
     |    +-- InvalidRequest    the request is well formed but not allowed
     +-- ExportError            an exporter could not deliver (retried)
     +-- AgentUnavailable       the CLI could not reach the control API
"""

from __future__ import annotations


class ProvsyncError(Exception):
    """Root of every error provsync raises on purpose."""


class ConfigError(ProvsyncError):
    """The configuration is malformed; the message names the file and the key path."""


class StoreError(ProvsyncError):
    """The store cannot be opened, migrated or written."""


class StoreLockedError(StoreError):
    """Another agent process owns this store."""


class AlarmError(ProvsyncError):
    """A request the alarm manager refuses."""


class UnknownAlarmType(AlarmError):
    """The alarm or event type is neither in the catalog nor defined by the site."""


class AlarmNotFound(AlarmError):
    """No alarm matches the id or key."""


class InvalidRequest(AlarmError):
    """The request is well formed but not allowed (for example raising an event type)."""


class ExportError(ProvsyncError):
    """An exporter failed to deliver; the exporter retries from its cursor."""


class AgentUnavailable(ProvsyncError):
    """The control API did not answer."""
