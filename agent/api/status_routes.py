"""Control API routes for the agent itself: health, status, the alarm catalog, shutdown.

Three routers, so that the app includes them around the alarm and event routes in the
order the OpenAPI document has always listed them: health (public) first, then status
and catalog, and shutdown after the events.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import APIRouter, Depends

from agent import __version__
from agent.alarms import queries
from agent.alarms.records import iso
from agent.api.services import ManagerDep, ServicesDep, StoreDep, authorize
from agent.errors import ProvsyncError
from agent.export.base import Exporter
from agent.export.snmp.service import SnmpService

HEALTH = "/api/v1/health"
"""The one route under ``/api/`` that needs no token."""


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _exporter_status(exporter: Exporter) -> dict[str, Any]:
    return {
        "name": exporter.name,
        "cursor": exporter.cursor,
        "backlog": exporter.backlog(),
        "delivered": exporter.delivered,
        "failures": exporter.failures,
        # Messages a collector's size limit cannot hold (syslog only): skipped.
        "oversized": getattr(exporter, "oversized", 0),
        "last_error": exporter.last_error,
        "down_for": _rounded(exporter.down_for()),
    }


def _snmp_status(snmp: SnmpService | None) -> dict[str, Any] | None:
    if snmp is None:
        return None
    return {
        "engine_id": snmp.engine_id,
        "engine_boots": snmp.boots,
        "listen": list(snmp.snmp.listen),
        "view_seq": snmp.data.seq,
        "requests": dict(snmp.fast.counters) | snmp.counters,
    }


async def _cluster_status(services: ServicesDep) -> dict[str, Any]:
    """Node, role, leader and members: this agent leads (or runs alone on its store)."""
    alone: dict[str, Any] = {"node": services.node, "api_url": None, "pid": os.getpid()}
    if services.cluster is None:
        return {"node": services.node, "role": "leader", "leader": alone, "members": []}
    try:
        view = await asyncio.to_thread(services.cluster)
    except ProvsyncError as exc:
        # The status must answer while the store does not: the members are unknown then.
        return {
            "node": services.node,
            "role": "leader",
            "leader": alone,
            "members": [],
            "cluster_error": str(exc),
        }
    return {"node": services.node, "role": "leader", **view}


def health_router() -> APIRouter:
    """Liveness, public (the guard and this router ask no token)."""
    router = APIRouter()

    @router.get(HEALTH, summary="Liveness (no token needed)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return router


def status_router() -> APIRouter:
    """Status and catalog (the operators' token)."""
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.get("/status", summary="Agent status, alarm counts and exporter cursors")
    async def status(services: ServicesDep, store: StoreDep) -> dict[str, Any]:
        manager = services.manager
        store_state = services.store_state()
        # Fenced: the store may be unreachable; the status answers at once and says so.
        counts = None
        if store_state == "owned":
            counts = await asyncio.to_thread(queries.alarm_counts, store.engine)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": iso(services.started_at),
            "store": services.store_url,
            "store_id": services.store_id,
            "store_state": store_state,
            "last_seq": manager.last_seq,
            "writer": {
                "pending": manager.pending,
                "max_pending_writes": manager.pending_max,
                "refused": manager.refused,
            },
            "active_alarms": counts,
            "exporters": [_exporter_status(e) for e in services.exporters],
            "snmp": _snmp_status(services.snmp),
            **(await _cluster_status(services)),
        }

    @router.get("/catalog", summary="Alarm and event types (alarm inventory)")
    async def catalog(manager: ManagerDep) -> list[dict[str, Any]]:
        return [t.to_dict() for t in manager.catalog]

    return router


def shutdown_router() -> APIRouter:
    """Stopping the agent (the operators' token)."""
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.post("/shutdown", summary="Stop the agent gracefully")
    async def shutdown(services: ServicesDep) -> dict[str, str]:
        services.request_stop()
        return {"status": "stopping"}

    return router
