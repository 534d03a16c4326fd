"""The billing hand-over's mark on a direct-debit invoice's open item: collected on the date and at
most at the amount the invoice notified (one row per item)

Revision ID: 0023_collection_schedule
Revises: 0020_sepa_collections
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0023_collection_schedule"
down_revision = "0021_refunds_payables"
branch_labels = None
depends_on = None


def _s(name: str, n: int) -> sa.Column:
    return sa.Column(name, sa.String(length=n), nullable=False)


def upgrade() -> None:
    op.create_table(
        "collection_schedule",
        _s("id", 40), _s("tenant_id", 40), _s("item_id", 40), _s("invoice_id", 40), _s("account_id", 40),
        _s("mandate_id", 40), sa.Column("collection_date", sa.Date(), nullable=False),
        sa.Column("amount", store.types.ExactDecimal(length=64), nullable=False), _s("currency", 3),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["receivable_item.id"]),
        sa.ForeignKeyConstraint(["mandate_id"], ["sepa_mandate.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "item_id", name="uq_collection_schedule_item"),
    )


def downgrade() -> None:
    op.drop_table("collection_schedule")
