"""Posting batches on a schedule: the tenant's cadence (off, daily, monthly); finance tasks that
are not about an invoice (a batch whose delivery finally failed): ``billing_finance_task.invoice_id``
may be empty and ``subject_id`` names the object instead

Revision ID: 0030_accounting_schedule
Revises: 0025_journal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0030_accounting_schedule"
down_revision = "0031_exchange_rates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounting_batch_schedule",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("cadence", sa.String(length=10), nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]), sa.PrimaryKeyConstraint("tenant_id"))
    with op.batch_alter_table("billing_finance_task") as batch:
        batch.alter_column("invoice_id", existing_type=sa.String(length=40), nullable=True)
        batch.add_column(sa.Column("subject_id", sa.String(length=40), nullable=True))
        batch.create_index("ix_billing_task_subject", ["tenant_id", "kind", "subject_id"])


def downgrade() -> None:
    with op.batch_alter_table("billing_finance_task") as batch:
        batch.drop_index("ix_billing_task_subject")
        batch.drop_column("subject_id")
        batch.alter_column("invoice_id", existing_type=sa.String(length=40), nullable=False)
    op.drop_table("accounting_batch_schedule")
