"""Sharing: the group, the Sync and Reconcile wizard, distribution errors, activation
(to be built)."""

from __future__ import annotations

from fastapi import APIRouter


def sharing_router() -> APIRouter:
    return APIRouter()
