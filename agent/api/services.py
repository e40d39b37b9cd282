"""What the control API's routes use, and the typed FastAPI dependencies that hand it out.

``Services`` is built by the agent's lifecycle (agent.app) and stored on the app by
:func:`agent.api.app.create_app`; :func:`services_of` is the one place that reads it back.
A route takes what it needs as a parameter (``ManagerDep``, ``SyncDep``, ``SharingDep``,
``StoreDep``), each typed with the component's own class; a component that is not
running answers 503 (a ProvsyncError) before the route runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.alarms.manager import AlarmManager
from agent.api.guard import refusal, tokens_match
from agent.errors import ProvsyncError
from agent.export.base import Exporter
from agent.export.snmp.service import SnmpService
from agent.sharing.service import SharingService
from agent.store.access import StoreAccess
from agent.sync.engine import SyncEngine


@dataclass
class Services:
    """What the routes use; built by the agent's lifecycle and injected here."""

    manager: AlarmManager
    token: str
    started_at: datetime
    store_url: str
    store_id: str
    element_token: str = ""
    """Accepted on the element-to-hub routes only (besides the operators' token)."""
    exporters: list[Exporter] = field(default_factory=list)
    request_stop: Callable[[], None] = lambda: None
    snmp: SnmpService | None = None
    """None when SNMP is disabled."""
    sync: SyncEngine | None = None
    sharing: SharingService | None = None
    store: StoreAccess | None = None
    """The store's repositories (elements, jobs, shared data, distributions...)."""
    max_body: int = 1 << 20
    """``[api] max_body``: the largest request body, in bytes."""
    max_batch: int = 1000
    """``[api] max_batch``: the most operations in one request of the batch route."""
    store_state: Callable[[], str] = lambda: "owned"
    """owned, fenced (lock lost: writes refused until it is back) or lost (taken over)."""
    node: str = ""
    """``[agent] node``: this agent's name among the store's agents."""
    cluster: Callable[[], dict[str, Any]] | None = None
    """The cluster's leader and members (blocking: called in a thread); None: the agent
    runs without [cluster], alone on its store."""
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    """Called when the server starts to stop, before it waits for open connections: the
    console's event streams end there (a browser's open page must not hold the stop)."""


# The dependencies are coroutines although they never wait: FastAPI runs a plain def
# dependency in a worker thread, two thread hops per request (most of its cost here).
async def services_of(request: Request) -> Services:
    """The app's Services (set by create_app)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(services_of)]


async def manager_of(services: ServicesDep) -> AlarmManager:
    return services.manager


ManagerDep = Annotated[AlarmManager, Depends(manager_of)]


async def sync_engine(services: ServicesDep) -> SyncEngine:
    if services.sync is None:
        raise ProvsyncError("synchronization is not running")
    return services.sync


SyncDep = Annotated[SyncEngine, Depends(sync_engine)]


async def sharing_service(services: ServicesDep) -> SharingService:
    if services.sharing is None:
        raise ProvsyncError("sharing is not running")
    return services.sharing


SharingDep = Annotated[SharingService, Depends(sharing_service)]


async def store_access(services: ServicesDep) -> StoreAccess:
    if services.store is None:
        raise ProvsyncError("the store is not open")
    return services.store


StoreDep = Annotated[StoreAccess, Depends(store_access)]
"""The store's repositories (the routes of sync and sharing read through them)."""


_bearer = HTTPBearer(auto_error=False, description="the token from [api] token or api.token")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _matches(credentials: HTTPAuthorizationCredentials | None, *tokens: str) -> bool:
    return credentials is not None and tokens_match(credentials.credentials, tokens)


async def authorize(services: ServicesDep, credentials: BearerDep) -> None:
    """Operators' routes: the operators' token."""
    if not _matches(credentials, services.token):
        raise refusal()


async def authorize_element(services: ServicesDep, credentials: BearerDep) -> None:
    """Element-to-hub routes: the elements' token (or the operators')."""
    if not _matches(credentials, services.token, services.element_token):
        raise refusal()
