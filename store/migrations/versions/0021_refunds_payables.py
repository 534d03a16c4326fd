"""Payables (refunds now, host credits with issue 15), payout runs, the items each run pays (a
payable is live in one run at most) and the archived pain.001 files (append-only)

Revision ID: 0021_refunds_payables
Revises: 0020_sepa_collections
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0021_refunds_payables"
down_revision = "0020_sepa_collections"
branch_labels = None
depends_on = None

_LIVE = "status IN ('proposed', 'submitted', 'paid')"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def _dec(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.ExactDecimal(length=64), nullable=nullable)


def _s(name: str, n: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=n), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "payable",
        _s("id", 40), _s("tenant_id", 40), _s("key", 200), _s("kind", 20), _s("payee_kind", 20), _s("payee_id", 40),
        _s("account_id", 40, nullable=True), _s("payee_name", 70), _s("iban", 34), _s("bic", 11), _dec("amount"),
        _s("currency", 3), _s("remittance", 140), _s("source_kind", 20), _s("source_id", 40),
        _s("receivable_key", 200), _s("status", 20), _s("end_to_end_id", 35),
        sa.Column("paid_on", sa.Date(), nullable=True), _s("return_reason", 10), _s("requested_by", 40),
        _ts("created_at"), _ts("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_payable_key"),
    )
    op.create_index("ix_payable_status", "payable", ["tenant_id", "status"])
    op.create_index("ix_payable_payee", "payable", ["tenant_id", "payee_id"])
    op.create_table(
        "payout_run",
        _s("id", 40), _s("tenant_id", 40), _s("creditor_account_id", 40), _s("workflow_id", 200), _s("status", 20),
        sa.Column("as_of", sa.Date(), nullable=False), _s("pain_version", 20), _s("message_id", 35),
        sa.Column("items", sa.Integer(), nullable=False), _dec("total"), _s("currency", 3),
        sa.Column("requested_by", sa.JSON(), nullable=False), _s("file_id", 40, nullable=True), _s("started_by", 40),
        _s("decided_by", 40), _s("decision_reason", 1000), _ts("created_at"), _ts("decided_at", nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["creditor_account_id"], ["sepa_creditor_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "workflow_id", name="uq_payout_run_workflow"),
    )
    op.create_index("ix_payout_run_status", "payout_run", ["tenant_id", "status"])
    op.create_table(
        "payout_item",
        _s("id", 40), _s("tenant_id", 40), _s("run_id", 40), _s("payable_id", 40), _s("end_to_end_id", 35),
        _dec("amount"), _s("currency", 3), _s("status", 20), _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["payout_run.id"]),
        sa.ForeignKeyConstraint(["payable_id"], ["payable.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "end_to_end_id", name="uq_payout_item_e2e"),
    )
    # a payable is live (proposed, submitted, paid) in one payout run at most
    op.create_index("uq_payout_item_live", "payout_item", ["tenant_id", "payable_id"], unique=True,
                    sqlite_where=sa.text(_LIVE), postgresql_where=sa.text(_LIVE))
    op.create_index("ix_payout_item_run", "payout_item", ["run_id"])
    op.create_table(
        "payout_file",
        _s("id", 40), _s("tenant_id", 40), _s("run_id", 40), _s("name", 200), _s("media_type", 60),
        _s("pain_version", 20), sa.Column("content", sa.LargeBinary(), nullable=False), _s("sha256", 64),
        sa.Column("size", sa.Integer(), nullable=False), _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["payout_run.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", name="uq_payout_file_run"),
    )
    for ddl in append_only_ddl(op.get_bind().dialect.name, "payout_file"):
        op.execute(ddl)


def downgrade() -> None:
    for ddl in drop_append_only_ddl(op.get_bind().dialect.name, "payout_file"):
        op.execute(ddl)
    op.drop_table("payout_file")
    op.drop_table("payout_item")
    op.drop_table("payout_run")
    op.drop_table("payable")
