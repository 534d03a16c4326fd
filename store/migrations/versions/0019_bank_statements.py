"""bank statements: the tenant's bank accounts (registered, or seen in a statement and waiting to be
confirmed), imported camt statements, their entries (one row per transaction, known by a stable
identity so nothing is booked twice) and the payers learned from manual matches

Revision ID: 0019_bank_statements
Revises: 0018_receivables
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0019_bank_statements"
down_revision = "0018_receivables"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def _dec(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.ExactDecimal(length=64), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "bank_account",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "iban", name="uq_bank_account_iban"),
    )
    op.create_table(
        "bank_statement",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("bank_account_id", sa.String(length=40), nullable=False),
        sa.Column("identity", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("statement_id", sa.String(length=100), nullable=False),
        sa.Column("sequence", sa.String(length=40), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        _dec("opening", True), _dec("closing", True),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("review", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["bank_account_id"], ["bank_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "identity", name="uq_bank_statement_identity"),
    )
    op.create_table(
        "bank_entry",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("statement_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("credit", sa.Boolean(), nullable=False),
        _dec("amount"),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("bank_ref", sa.String(length=100), nullable=False),
        sa.Column("end_to_end_id", sa.String(length=100), nullable=False),
        sa.Column("bank_tx_code", sa.String(length=40), nullable=False),
        sa.Column("debtor_name", sa.String(length=200), nullable=False),
        sa.Column("debtor_iban", sa.String(length=34), nullable=False),
        sa.Column("remittance", sa.String(length=1000), nullable=False),
        sa.Column("return_reason", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("rule", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.Column("decided_by", sa.String(length=40), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["statement_id"], ["bank_statement.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_bank_entry_key"),
    )
    op.create_index("ix_bank_entry_status", "bank_entry", ["tenant_id", "status"])
    op.create_index("ix_bank_entry_statement", "bank_entry", ["statement_id"])
    op.create_table(
        "bank_payer_link",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("learned_from", sa.String(length=40), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "kind", "value", name="uq_bank_payer_link"),
    )


def downgrade() -> None:
    for t in ("bank_payer_link", "bank_entry", "bank_statement", "bank_account"):
        op.drop_table(t)
