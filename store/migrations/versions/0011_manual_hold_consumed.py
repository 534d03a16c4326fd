"""A manual hold holds the account's next invoice only: the draft it held is recorded on it

Revision ID: 0011_manual_hold_consumed
Revises: 0010_account_lookup_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0011_manual_hold_consumed"
down_revision = "0010_account_lookup_indexes"
branch_labels = None
depends_on = "0003_billing"  # the table is the billing branch's


def upgrade() -> None:
    with op.batch_alter_table("billing_hold") as batch:
        batch.add_column(sa.Column("consumed_by_invoice", sa.String(40), nullable=True))
        batch.add_column(sa.Column("consumed_at", store.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("billing_hold") as batch:
        batch.drop_column("consumed_at")
        batch.drop_column("consumed_by_invoice")
