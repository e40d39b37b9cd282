"""Elements, their credentials (apart), the hub's copy of their objects, sync jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "elements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("sync_state", sa.String(16), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.String(64), nullable=False),
        sa.Column("software_version", sa.String(64), nullable=False),
        sa.Column("agent_version", sa.String(32), nullable=False),
        sa.Column("last_init_ok", sa.Boolean(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("last_sync_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_elements"),
        sa.UniqueConstraint("name", name="uq_elements_name"),
        # Ids are never reused: jobs and alarms of a removed element keep pointing at it.
        sqlite_autoincrement=True,
    )
    op.create_table(
        "element_credentials",
        sa.Column("element_id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("password", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("element_id", name="pk_element_credentials"),
    )
    op.create_table(
        "element_objects",
        sa.Column("element_id", sa.Integer(), nullable=False),
        sa.Column("cls", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("element_id", "cls", "key", name="pk_element_objects"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("element_id", sa.Integer(), nullable=False),
        sa.Column("element", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_element_id", "jobs", ["element_id"])


def downgrade() -> None:
    for table in ("jobs", "element_objects", "element_credentials", "elements"):
        op.drop_table(table)
