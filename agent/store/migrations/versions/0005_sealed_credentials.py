"""Element credentials encrypted at rest: the id of the key that sealed them.

Existing rows keep their clear values with an empty key id; the agent encrypts them in
place on its next start (agent.store.encryption.open_key_ring). Usernames become Text:
their ciphertext is longer than 128 characters.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("element_credentials") as batch:
        batch.alter_column("username", type_=sa.Text(), existing_type=sa.String(128),
                           existing_nullable=False)  # fmt: skip
        batch.add_column(sa.Column("key_id", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("element_credentials") as batch:
        batch.drop_column("key_id")
