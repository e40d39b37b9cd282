"""Request bodies and bounded numbers of the control API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

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


# ------------------------------------------------------------------ the batch route
BatchId = Annotated[int, Field(ge=1, le=MAX_ID, description="an alarm id (1 to 2^63-1)")]


class BatchRaise(RaiseRequest):
    op: Literal["raise"]


class BatchClear(_Body):
    """By ``id``, or by key (``type``, ``resource``, ``qualifier``) for the active alarm."""

    op: Literal["clear"]
    id: BatchId | None = None
    type: str | None = Field(default=None, min_length=1, max_length=64)
    resource: str | None = Field(default=None, min_length=1, max_length=255)
    qualifier: str = Field(default="", max_length=255)
    note: str | None = Field(default=None, max_length=4096)
    by: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _one_way(self) -> BatchClear:
        by_key = self.type is not None or self.resource is not None or self.qualifier
        if self.id is not None and by_key:
            raise ValueError("clear by id or by type and resource, not both")
        if self.id is None and (self.type is None or self.resource is None):
            raise ValueError("clear needs an id, or a type and a resource")
        return self


class BatchAck(NoteRequest):
    op: Literal["ack", "unack"]
    id: BatchId


BatchOperation = Annotated[BatchRaise | BatchClear | BatchAck, Field(discriminator="op")]


class BatchRequest(_Body):
    operations: list[BatchOperation] = Field(
        min_length=1, description="applied in this order; at most [api] max_batch"
    )
