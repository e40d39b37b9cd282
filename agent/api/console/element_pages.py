"""The elements, their sync actions and the jobs (to be built)."""

from __future__ import annotations

from fastapi import APIRouter


def element_router() -> APIRouter:
    return APIRouter()
