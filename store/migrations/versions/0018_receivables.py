"""receivables: open items (one per finalized invoice, and credit balances), the events that change
them (each booked once per key) and their entries, append-only like the audit chain

Revision ID: 0018_receivables
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0018_receivables"
down_revision = "0001"
branch_labels = ("receivables",)
depends_on = "0003_billing"


def upgrade() -> None:
    op.create_table(
        "receivable_item",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", store.types.ExactDecimal(length=64), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "invoice_id", name="uq_receivable_item_invoice"),
    )
    op.create_index("ix_receivable_item_account", "receivable_item", ["tenant_id", "account_id", "currency"])
    op.create_index("ix_receivable_item_customer", "receivable_item", ["tenant_id", "customer_id"])
    op.create_table(
        "receivable_event",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", store.types.ExactDecimal(length=64), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=300), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_receivable_event_key"),
    )
    op.create_table(
        "receivable_entry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", store.types.ExactDecimal(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["receivable_item.id"]),
        sa.ForeignKeyConstraint(["event_id"], ["receivable_event.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_receivable_entry_item", "receivable_entry", ["item_id"])
    op.create_index("ix_receivable_entry_event", "receivable_entry", ["event_id"])
    dialect = op.get_bind().dialect.name
    for table in ("receivable_event", "receivable_entry"):
        for ddl in append_only_ddl(dialect, table):
            op.execute(ddl)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in ("receivable_event", "receivable_entry"):
        for ddl in drop_append_only_ddl(dialect, table):
            op.execute(ddl)
    op.drop_table("receivable_entry")
    op.drop_table("receivable_event")
    op.drop_table("receivable_item")
