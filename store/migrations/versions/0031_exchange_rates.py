"""Multi-currency journal: reference exchange rates (ECB convention: foreign units per functional
unit, per currency and day) and, on each journal entry, the functional currency and the rate of
its document date, on each line the amount in the functional currency (NULL on entries in the
functional currency itself: written before this revision or domestic)

Revision ID: 0031_exchange_rates
Revises: 0025_journal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0031_exchange_rates"
down_revision = "0032_host_credit_notes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_rate",
        sa.Column("functional", sa.String(length=3), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rate", store.types.ExactDecimal(length=64), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("imported_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("functional", "currency", "day"))
    op.add_column("journal_entry", sa.Column("functional_currency", sa.String(length=3), nullable=True))
    op.add_column("journal_entry", sa.Column("rate", store.types.ExactDecimal(length=64), nullable=True))
    op.add_column("journal_entry", sa.Column("rate_date", sa.Date(), nullable=True))
    op.add_column("journal_line", sa.Column("functional_amount", store.types.ExactDecimal(length=64), nullable=True))
    for ddl in append_only_ddl(op.get_bind().dialect.name, "exchange_rate"):
        op.execute(ddl)


def downgrade() -> None:
    for ddl in drop_append_only_ddl(op.get_bind().dialect.name, "exchange_rate"):
        op.execute(ddl)
    op.drop_column("journal_line", "functional_amount")
    op.drop_column("journal_entry", "rate_date")
    op.drop_column("journal_entry", "rate")
    op.drop_column("journal_entry", "functional_currency")
    op.drop_table("exchange_rate")
