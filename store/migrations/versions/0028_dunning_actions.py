"""Dunning actions that change things: a contract suspended by a dunning case says why
(``contract.status_reason``), a block records what it changed (``dunning_block.detail``), a case paused by hand says why and by whom, an approval task left open too long is escalated
(``dunning_stage.escalated_at``, ``assigned_role``), and the
exports for a collection agency are archived once per case, stage and format (``dunning_handover``)

Revision ID: 0028_dunning_actions
Revises: 0025_journal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0028_dunning_actions"
down_revision = "0030_accounting_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contract", sa.Column("status_reason", sa.String(length=200), nullable=False, server_default=""))
    op.add_column("dunning_block", sa.Column("detail", sa.JSON(), nullable=True))
    op.add_column("dunning_case", sa.Column("hold_reason", sa.String(length=1000), nullable=True))
    op.add_column("dunning_case", sa.Column("held_by", sa.String(length=40), nullable=True))
    op.add_column("dunning_stage", sa.Column("escalated_at", store.types.UTCDateTime(timezone=True), nullable=True))
    op.add_column("dunning_stage", sa.Column("assigned_role", sa.String(length=20), nullable=True))
    op.create_table(
        "dunning_handover",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["dunning_case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "stage", "format", name="uq_dunning_handover_stage"),
    )


def downgrade() -> None:
    op.drop_table("dunning_handover")
    op.drop_column("dunning_stage", "assigned_role")
    op.drop_column("dunning_stage", "escalated_at")
    op.drop_column("dunning_case", "held_by")
    op.drop_column("dunning_case", "hold_reason")
    op.drop_column("dunning_block", "detail")
    op.drop_column("contract", "status_reason")
