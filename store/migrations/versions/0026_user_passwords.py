"""user passwords and console sessions: people sign in to the web console with an e-mail and a
password (an argon2id hash in a table of its own, so it never rides along with the user's row) and
get a server-side session (known by the sha256 of its cookie's token, with its own CSRF token)

Revision ID: 0026_user_passwords
Revises: 0020_sepa_collections
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0026_user_passwords"
down_revision = "0023_collection_schedule"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "user_password",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("hash", sa.String(length=200), nullable=False),
        _ts("set_at"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "console_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        _ts("created_at"), _ts("expires_at"), _ts("revoked_at", True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_session_user", "console_session", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_console_session_user", table_name="console_session")
    op.drop_table("console_session")
    op.drop_table("user_password")
