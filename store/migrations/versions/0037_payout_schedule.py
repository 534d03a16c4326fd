"""The monthly payout schedule: the day of the month each tenant's payout runs start (NULL: on
demand only)

Revision ID: 0037_payout_schedule
Revises: 0028_dunning_actions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0037_payout_schedule"
down_revision = "0028_dunning_actions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payout_schedule",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("day_of_month", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.String(length=40), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]), sa.PrimaryKeyConstraint("tenant_id"))


def downgrade() -> None:
    op.drop_table("payout_schedule")
