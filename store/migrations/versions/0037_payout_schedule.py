"""The monthly payout schedule: the day of the month each tenant's payout runs start (NULL: on
demand only); what a host credit note settled of the partner's open receivables (netting)

Revision ID: 0037_payout_schedule
Revises: 0028_dunning_actions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0037_payout_schedule"
down_revision = "0038_clearing_commissions"
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
    with op.batch_alter_table("host_credit_note") as batch:
        batch.add_column(sa.Column("netted_receivables", store.types.ExactDecimal(length=64), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("host_credit_note") as batch:
        batch.drop_column("netted_receivables")
    op.drop_table("payout_schedule")
