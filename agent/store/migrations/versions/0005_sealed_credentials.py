"""Element credentials encrypted at rest: the id of the key that sealed them.

Existing rows keep their clear values with an empty key id; the agent encrypts them in
place on its next start (agent.store.encryption.open_key_ring). Usernames become Text:
their ciphertext is longer than 128 characters.

The store is also marked for one scrub (agent.store.encryption.scrub_store): the clear
values of rows updated or removed before, and of the table this migration copies, can
stay in free pages (SQLite without secure_delete) or dead row versions (PostgreSQL).

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
        batch.alter_column(
            "username", type_=sa.Text(), existing_type=sa.String(128), existing_nullable=False
        )
        batch.add_column(sa.Column("key_id", sa.String(32), nullable=False, server_default=""))
    # The key is the literal of agent.store.encryption.SCRUB_PENDING: a migration does not
    # import code that may change after it.
    op.execute("INSERT INTO meta (key, value) VALUES ('credentials_scrub_pending', '1')")


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'credentials_scrub_pending'")
    with op.batch_alter_table("element_credentials") as batch:
        batch.drop_column("key_id")
