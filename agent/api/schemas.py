"""Request bodies and bounded numbers of the control API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from agent.alarms.severity import Severity

MAX_ID = 2**63 - 1
"""Ids and sequence numbers are signed 64-bit integers in the store (SQLite, PostgreSQL
BIGINT): a larger number cannot name anything, and reaching the store with it fails."""

RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 to 2^63-1)")]
AfterQuery = Annotated[
    int, Query(ge=0, le=MAX_ID, description="only those with a higher id / sequence number")
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RaiseRequest(_Body):
    type: str = Field(min_length=1, max_length=64, description="alarm type id (see /catalog)")
    resource: str = Field(min_length=1, max_length=255)
    qualifier: str = Field(default="", max_length=255)
    severity: Severity | None = Field(default=None, description="default: the type's severity")
    text: str = Field(default="", max_length=4096)
    by: str | None = Field(default=None, max_length=128, description="who raised it")


class ClearByKeyRequest(_Body):
    type: str = Field(min_length=1, max_length=64)
    resource: str = Field(min_length=1, max_length=255)
    qualifier: str = Field(default="", max_length=255)
    note: str | None = Field(default=None, max_length=4096)
    by: str | None = Field(default=None, max_length=128)


class NoteRequest(_Body):
    note: str | None = Field(default=None, max_length=4096)
    by: str | None = Field(default=None, max_length=128)


class TestRequest(_Body):
    text: str = Field(default="", max_length=4096)
    by: str | None = Field(default=None, max_length=128)
