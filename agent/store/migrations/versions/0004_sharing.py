"""Sharing: shared data, per-element base, conflicts, distributions, device data.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("elements") as batch:
        batch.add_column(sa.Column("remote_id", sa.String(64), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("sharing", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("sharing_epoch", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("device_data", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("uses", sa.Text(), nullable=False, server_default="[]"))
    op.create_table(
        "shared_objects",
        sa.Column("cls", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("number", sa.String(64), nullable=True),
        sa.Column("login", sa.String(128), nullable=True),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("cls", "key", name="pk_shared_objects"),
    )
    for column in ("number", "login", "email"):
        op.create_index(f"ix_shared_objects_{column}", "shared_objects", [column])
    op.create_table(
        "sharing_base",
        sa.Column("element_id", sa.Integer(), nullable=False),
        sa.Column("cls", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("element_id", "cls", "key", name="pk_sharing_base"),
    )
    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("element_id", sa.Integer(), nullable=False),
        sa.Column("element", sa.String(64), nullable=False),
        sa.Column("cls", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("hub_key", sa.String(128), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("hub_data", sa.Text(), nullable=True),
        sa.Column("element_data", sa.Text(), nullable=True),
        sa.Column("base_data", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_conflicts"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_conflicts_element_id", "conflicts", ["element_id"])
    op.create_index("ix_conflicts_state", "conflicts", ["state"])
    op.create_table(
        "distributions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("element_id", sa.Integer(), nullable=False),
        sa.Column("element", sa.String(64), nullable=False),
        sa.Column("cls", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_distributions"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_distributions_element_state", "distributions", ["element_id", "state", "id"]
    )
    op.create_table(
        "device_data",
        sa.Column("element_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("element_id", "number", name="pk_device_data"),
    )


def downgrade() -> None:
    for table in ("device_data", "distributions", "conflicts", "sharing_base", "shared_objects"):
        op.drop_table(table)
    with op.batch_alter_table("elements") as batch:
        for column in ("uses", "device_data", "sharing_epoch", "sharing", "remote_id"):
            batch.drop_column(column)
