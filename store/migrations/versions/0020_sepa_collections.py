"""SEPA direct debit: the tenant's creditor accounts, mandates of billing accounts, collection runs,
the items each run collects (an open item is live in one collection at most) and the archived
pain.008 files (append-only)

Revision ID: 0020_sepa_collections
Revises: 0019_bank_statements
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0020_sepa_collections"
down_revision = "0019_bank_statements"
branch_labels = None
depends_on = None

_LIVE = "status IN ('proposed', 'submitted', 'collected')"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def _dec(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.ExactDecimal(length=64), nullable=nullable)


def _s(name: str, n: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=n), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sepa_creditor_account",
        _s("id", 40), _s("tenant_id", 40), _s("name", 70), _s("iban", 34), _s("bic", 11), _s("creditor_id", 35),
        _s("currency", 3), sa.Column("lead_time_days", sa.Integer(), nullable=False), _s("pain_version", 20),
        sa.Column("pass_return_charges", sa.Boolean(), nullable=False), _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "iban", name="uq_sepa_creditor_iban"),
    )
    op.create_table(
        "sepa_mandate",
        _s("id", 40), _s("tenant_id", 40), _s("creditor_account_id", 40), _s("account_id", 40), _s("reference", 35),
        sa.Column("signed_on", sa.Date(), nullable=False), _s("debtor_name", 70), _s("iban", 34), _s("bic", 11),
        _s("scheme", 4), _s("status", 20), _s("sequence", 4), _s("original_reference", 35), _s("original_iban", 34),
        sa.Column("last_collection_on", sa.Date(), nullable=True), _s("attention_reason", 200), _s("source", 20),
        _ts("created_at"), _ts("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["creditor_account_id"], ["sepa_creditor_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "creditor_account_id", "reference", name="uq_sepa_mandate_reference"),
    )
    op.create_index("ix_sepa_mandate_account", "sepa_mandate", ["tenant_id", "account_id"])
    op.create_table(
        "collection_run",
        _s("id", 40), _s("tenant_id", 40), _s("creditor_account_id", 40), _s("workflow_id", 200), _s("status", 20),
        sa.Column("as_of", sa.Date(), nullable=False), _s("pain_version", 20), _s("message_id", 35),
        sa.Column("items", sa.Integer(), nullable=False), _dec("total"), _s("currency", 3),
        sa.Column("skipped", sa.JSON(), nullable=False), _s("file_id", 40, nullable=True), _s("started_by", 40),
        _s("decided_by", 40), _s("decision_reason", 1000), _ts("created_at"), _ts("decided_at", nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["creditor_account_id"], ["sepa_creditor_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "workflow_id", name="uq_collection_run_workflow"),
    )
    op.create_index("ix_collection_run_status", "collection_run", ["tenant_id", "status"])
    op.create_table(
        "collection_item",
        _s("id", 40), _s("tenant_id", 40), _s("run_id", 40), _s("item_id", 40), _s("account_id", 40),
        _s("mandate_id", 40), _s("number", 40), _s("end_to_end_id", 35), _dec("amount"), _s("currency", 3),
        _s("sequence", 4), sa.Column("collection_date", sa.Date(), nullable=False), _s("original_reference", 35),
        _s("original_iban", 34), _s("status", 20), _s("return_reason", 10), _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["collection_run.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["receivable_item.id"]),
        sa.ForeignKeyConstraint(["mandate_id"], ["sepa_mandate.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "end_to_end_id", name="uq_collection_item_e2e"),
    )
    # an open item is live (proposed, submitted, collected) in one collection at most
    op.create_index("uq_collection_item_live", "collection_item", ["tenant_id", "item_id"], unique=True,
                    sqlite_where=sa.text(_LIVE), postgresql_where=sa.text(_LIVE))
    op.create_index("ix_collection_item_run", "collection_item", ["run_id"])
    op.create_table(
        "collection_file",
        _s("id", 40), _s("tenant_id", 40), _s("run_id", 40), _s("name", 200), _s("media_type", 60),
        _s("pain_version", 20), sa.Column("content", sa.LargeBinary(), nullable=False), _s("sha256", 64),
        sa.Column("size", sa.Integer(), nullable=False), _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["collection_run.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", name="uq_collection_file_run"),
    )
    for ddl in append_only_ddl(op.get_bind().dialect.name, "collection_file"):
        op.execute(ddl)


def downgrade() -> None:
    for ddl in drop_append_only_ddl(op.get_bind().dialect.name, "collection_file"):
        op.execute(ddl)
    op.drop_table("collection_file")
    op.drop_table("collection_item")
    op.drop_table("collection_run")
    op.drop_table("sepa_mandate")
    op.drop_table("sepa_creditor_account")
