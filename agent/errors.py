"""The exceptions provsync raises.

Library exceptions are translated at the boundary (``raise ... from exc``); only the CLI
turns these into messages and exit codes, and the control API into HTTP statuses.

::

    ProvsyncError
     +-- ConfigError            bad configuration file, key or value
     +-- StoreError             the store cannot be opened, migrated or written
     |    +-- StoreLockedError  another agent owns this store
     |    +-- StoreFencedError  this agent lost the store's lock: no writes until it is back
     |    +-- StoreKeyError     the store key file is missing, wrong or unwritable
     +-- OverloadedError        too many writes wait for the store's writer (retry later)
     +-- AlarmError             a request the alarm manager refuses
     |    +-- UnknownAlarmType  no such type in the catalog or the site's config
     |    +-- AlarmNotFound     no such alarm (id or key)
     |    +-- InvalidRequest    the request is well formed but not allowed
     +-- ExportError            an exporter could not deliver (retried)
 +-- ConnectorError         talking to a network element failed
 |    +-- AuthError         the element refused the credentials
 |    |    +-- AuthMissing  ... because none were given
 |    |    +-- AuthIncorrect ... because they are wrong
 |    +-- ElementUnreachable no answer (after retries)
 |    +-- CursorGone        the change log no longer reaches the cursor, or the epoch changed
 |    +-- UpdateRejected    the element rejected a shared update (with its reason)
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


class StoreFencedError(StoreError):
    """This agent lost the store's ownership lock; it refuses to commit until it holds
    the lock again (the control API answers 503)."""


class StoreKeyError(StoreError):
    """The key file that encrypts credentials at rest is missing, wrong or unwritable."""


class OverloadedError(ProvsyncError):
    """More requests wait for the alarm writer than the bound allows; nothing was queued.

    The control API answers 503 with ``Retry-After``; the caller may send it again.
    """


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


class ConnectorError(ProvsyncError):
    """Talking to a network element failed."""

    status: int = 0
    """The element's HTTP status, when it answered with an error (0: no answer)."""


class AuthError(ConnectorError):
    """The element refused the credentials."""


class AuthMissing(AuthError):
    """The element needs credentials and none were given."""


class AuthIncorrect(AuthError):
    """The element rejected the username or password."""


class ElementUnreachable(ConnectorError):
    """The element did not answer, after the connector's retries."""


class CursorGone(ConnectorError):
    """The change log no longer reaches the cursor, or the data epoch changed."""


class UpdateRejected(ConnectorError):
    """The element rejected a shared update; the message is its reason."""


class ObjectNotFound(ProvsyncError):
    """No shared object with that class and key (HTTP 404)."""


class SharingError(ProvsyncError):
    """A sharing operation refused in the current state (HTTP 409): the message says why."""


class AgentUnavailable(ProvsyncError):
    """The control API did not answer."""
