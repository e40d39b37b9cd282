"""The exceptions provsync raises.

Library exceptions are translated at the boundary (``raise ... from exc``); only the CLI
turns these into messages and exit codes, and the control API into HTTP statuses
(``agent.api.app``: any ProvsyncError it does not map is 503, the store could not do it).
Every error a caller may see is defined here, so that one import names them all and no
layer imports another's module only for an exception class.

::

    ProvsyncError
     +-- ConfigError             bad configuration file, key or value
     +-- StoreError              the store cannot be opened, migrated or written
     |    +-- StoreLockedError   another agent owns this store
     |    +-- StoreFencedError   this agent lost the store's lock: no writes until it is back
     |    +-- StoreKeyError      the store key file is missing, wrong or unwritable
     +-- OverloadedError         too many writes wait for the store's writer (retry later)
     +-- AlarmError              a request the alarm manager refuses
     |    +-- UnknownAlarmType   no such type in the catalog or the site's config
     |    +-- AlarmNotFound      no such alarm (id or key)
     |    +-- InvalidRequest     the request is well formed but not allowed
     +-- ElementNotFound         no element with that name (HTTP 404)
     +-- JobNotFound             no sync job with that id (HTTP 404)
     +-- SyncStopped             an incremental sync that must not go on (init-sync-required)
     +-- ElementEmptied          an element returned no data while the hub holds some
     +-- NotifyRefused           an element's notify-sync notification refused whole (HTTP 409)
     +-- ObjectNotFound          no shared object with that class and key (HTTP 404)
     +-- SharingError            a sharing operation refused in the current state (HTTP 409)
     +-- ExportError             an exporter could not deliver (retried)
     |    +-- SendError          a trap sender's socket failed after some datagrams went out
     +-- Oversized               a syslog message cannot fit its collector (skipped)
     +-- ConnectorError          talking to a network element failed
     |    +-- AuthError          the element refused the credentials
     |    |    +-- AuthMissing   ... because none were given
     |    |    +-- AuthIncorrect ... because they are wrong
     |    +-- ElementUnreachable no answer (after retries)
     |    +-- CursorGone         the change log no longer reaches the cursor, or the epoch changed
     |    +-- UpdateRejected     the element rejected a shared update (with its reason)
     |    +-- MalformedAnswer    the element answered, but not as its API says
     +-- SimulatorError          the simulated element refuses a request (with an HTTP status)
     +-- AgentUnavailable        the CLI could not reach the control API
     +-- ApiError                the control API answered the CLI with an error status

Not here, on purpose: signals that never leave the module that raises them, so no caller
can see them.

- ``agent.api.console.common.NeedsLogin``: a console page asked for without a live
  session; the app answers it with the login help page (401).
- ``agent.api.console.common.FormRefused``: a console form without its session's CSRF
  token, or posted by a read-only session; the app answers it with a page (403).
- ``agent.api.console.element_pages.BadInput`` and
  ``agent.api.console.viewer_pages.BadQuery``: a console form or URL the API's rules
  refuse; the page module answers it with a page saying why (422).
- ``agent.sharing.reconcile._Withdrawn``: a reconcile decision whose conflict another
  transaction closed after it was read; the decision rolls back and the conflict is
  skipped (it never leaves the module).
- ``agent.cluster.forward._Refused``: a request a standby cannot relay to the leader
  (nobody leads, the leader does not answer, a body too large); the relay answers it
  (503 with Retry-After, or 413) and it never leaves the module.
- ``agent.sync.incremental.Escalate``: an incremental sync that must become an initialization;
  the engine catches it around the incremental sync and runs the initialization instead.
  It is a decision, not a failure, hence not a ProvsyncError.
- ``agent.export.snmp.ber.BerError`` and ``agent.export.snmp.screen.Refused`` (a
  BerError): an incoming SNMP message is not the BER expected, or is one RFC 3412 7.2
  discards with a counter of its own. They are ValueError subclasses because they come
  from decoding; the SNMP package catches them, counts the message and drops it.
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


class ElementNotFound(ProvsyncError):
    """No element with that name (nor one that calls itself so); HTTP 404."""


class JobNotFound(ProvsyncError):
    """No sync job with that id; HTTP 404."""


class SyncStopped(ProvsyncError):
    """An incremental sync that must not go on; the message says why.

    The element's state becomes init-required: only an initialization sync can go on.
    """


class ElementEmptied(ProvsyncError):
    """An initialization found the element empty while the hub holds its data: nothing
    was deleted, only a forced initialization with confirmation does (element-emptied)."""


class NotifyRefused(ProvsyncError):
    """A CM notify-sync notification the hub cannot apply now (a sync of the element
    runs, another epoch): nothing applied, the incremental takes the changes."""


class ObjectNotFound(ProvsyncError):
    """No shared object with that class and key (HTTP 404)."""


class SharingError(ProvsyncError):
    """A sharing operation refused in the current state (HTTP 409): the message says why."""


class ExportError(ProvsyncError):
    """An exporter failed to deliver; the exporter retries from its cursor."""


class SendError(ExportError):
    """A trap sender stopped at ``messages[sent]``: the ones before it went out."""

    def __init__(self, message: str, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


class Oversized(ProvsyncError):
    """The header and structured data of a syslog message alone exceed the collector's
    limit.

    Not an ExportError: sending it again cannot help, so the exporter skips the message.
    """


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


class MalformedAnswer(ConnectorError):
    """The element answered with success, but the body is not what its API promises
    (not JSON, a field missing or of the wrong type); the message names the request."""


class SimulatorError(ProvsyncError):
    """A request the simulated element (``provsync simulate``) refuses.

    ``status`` is the HTTP status to answer and ``error`` the Element API error code; the
    simulator's exception handler turns it into that answer.
    """

    def __init__(self, status: int, error: str, message: str = "") -> None:
        super().__init__(message or error)
        self.status = status
        self.error = error


class AgentUnavailable(ProvsyncError):
    """The control API did not answer."""


class ApiError(ProvsyncError):
    """The control API answered the CLI with an error status (``status``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
