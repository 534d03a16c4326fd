"""Dunning: cases per customer and currency, the stages they reached, archived letters
(append-only), disputes on open items, and the blocks a stage took (tokens, contracts, hand-over)

Revision ID: 0024_dunning
Revises: 0020_sepa_collections
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0024_dunning"
down_revision = "0022_collection_item_index"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def _dec(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.ExactDecimal(length=64), nullable=nullable)


def _s(name: str, n: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=n), nullable=nullable)


def _d(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Date(), nullable=nullable)


def _i(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "dunning_case",
        _s("id", 40), _s("tenant_id", 40), _s("customer_id", 40), _s("account_id", 40), _s("currency", 3),
        _s("open_key", 100, nullable=True), _s("workflow_id", 200), _s("ruleset_version_id", 40, nullable=True),
        _s("policy", 100), _s("debtor", 20), _s("status", 30), _i("stage"), _d("stage_on", True),
        _i("next_stage", True), _d("next_on", True), _s("reason", 200), sa.Column("refused", sa.Boolean(), nullable=False),
        sa.Column("interest_until", sa.JSON(), nullable=False), sa.Column("flat_fee_items", sa.JSON(), nullable=False),
        _d("started_on"), _d("closed_on", True), _ts("created_at"), _ts("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "open_key", name="uq_dunning_case_open"),
    )
    op.create_index("ix_dunning_case_customer", "dunning_case", ["tenant_id", "customer_id"])
    op.create_index("ix_dunning_case_status", "dunning_case", ["tenant_id", "status"])
    op.create_table(
        "dunning_stage",
        _s("id", 40), _s("tenant_id", 40), _s("case_id", 40), _i("stage"), _s("status", 30), _s("letter", 20),
        _d("planned_on"), _d("reached_on", True), _d("pay_by", True), _s("currency", 3), _dec("overdue"),
        _dec("charged"), _dec("total"), sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("charge_items", sa.JSON(), nullable=False), _s("decided_by", 40), _s("decision_reason", 1000),
        _ts("decided_at", True), _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["dunning_case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "stage", name="uq_dunning_stage_case"),
    )
    op.create_table(
        "dunning_letter",
        _s("id", 40), _s("tenant_id", 40), _s("case_id", 40), _i("stage"), _s("language", 10), _s("name", 200),
        sa.Column("content", sa.LargeBinary(), nullable=False), _s("sha256", 64), _i("size"), _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["dunning_case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "stage", name="uq_dunning_letter_stage"),
    )
    op.create_table(
        "receivable_dispute",
        _s("id", 40), _s("tenant_id", 40), _s("item_id", 40), _s("open_key", 40, nullable=True), _s("reason", 1000),
        _s("opened_by", 40), _ts("opened_at"), _s("resolved_by", 40, nullable=True),
        _s("resolution", 1000, nullable=True), _ts("resolved_at", True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["receivable_item.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "open_key", name="uq_receivable_dispute_open"),
    )
    op.create_index("ix_receivable_dispute_item", "receivable_dispute", ["tenant_id", "item_id"])
    op.create_table(
        "dunning_block",
        _s("id", 40), _s("tenant_id", 40), _s("customer_id", 40), _s("case_id", 40), _s("action", 30), _i("stage"),
        _ts("started_at"), _ts("released_at", True), _s("release_reason", 200, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["dunning_case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "action", name="uq_dunning_block_case_action"),
    )
    op.create_index("ix_dunning_block_customer", "dunning_block", ["tenant_id", "customer_id"])
    for ddl in append_only_ddl(op.get_bind().dialect.name, "dunning_letter"):
        op.execute(ddl)


def downgrade() -> None:
    for ddl in drop_append_only_ddl(op.get_bind().dialect.name, "dunning_letter"):
        op.execute(ddl)
    op.drop_table("dunning_block")
    op.drop_table("receivable_dispute")
    op.drop_table("dunning_letter")
    op.drop_table("dunning_stage")
    op.drop_table("dunning_case")
