"""partner statements: issued statements of a partner's sites and their lines, numbered per
tenant; the database refuses UPDATE and DELETE on both tables (issued statements are immutable)

Revision ID: 0006_partner_statements
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0006_partner_statements"
down_revision = "0001"
branch_labels = ("partner_statements",)
depends_on = None

_TABLES = ("partner_statement", "partner_statement_line")


def upgrade() -> None:
    op.create_table(
        "partner_statement",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("number_seq", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("agreement_id", sa.String(length=40), nullable=True),
        sa.Column("ruleset_version_id", sa.String(length=40), nullable=True),
        sa.Column("share_source", sa.String(length=300), nullable=False),
        sa.Column("local_start", sa.Date(), nullable=False),
        sa.Column("local_end", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("period_start", store.types.UTCDateTime(), nullable=False),
        sa.Column("period_end", store.types.UTCDateTime(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("covered_sessions", sa.Integer(), nullable=False),
        sa.Column("unrated_sessions", sa.Integer(), nullable=False),
        sa.Column("energy_kwh", store.types.ExactDecimal(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("issued_by", sa.String(length=40), nullable=False),
        sa.Column("issued_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "number_seq", name="uq_partner_statement_number"),
    )
    op.create_index("ix_partner_statement_partner", "partner_statement", ["tenant_id", "partner_id", "local_start"])
    op.create_table(
        "partner_statement_line",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("statement_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tax_rate", store.types.ExactDecimal(), nullable=True),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("energy_kwh", store.types.ExactDecimal(), nullable=False),
        sa.Column("quantity", store.types.ExactDecimal(), nullable=False),
        sa.Column("unit", sa.String(length=30), nullable=False),
        sa.Column("unit_price", store.types.ExactDecimal(), nullable=False),
        sa.Column("net", store.types.ExactDecimal(), nullable=False),
        sa.Column("tax", store.types.ExactDecimal(), nullable=False),
        sa.Column("gross", store.types.ExactDecimal(), nullable=False),
        sa.Column("net_unrounded", store.types.ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["statement_id"], ["partner_statement.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("statement_id", "seq", name="uq_partner_statement_line_seq"),
    )
    dialect = op.get_bind().dialect.name
    for table in _TABLES:
        for ddl in append_only_ddl(dialect, table):
            op.execute(ddl)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in _TABLES:
        for ddl in drop_append_only_ddl(dialect, table):
            op.execute(ddl)
    op.drop_table("partner_statement_line")
    op.drop_index("ix_partner_statement_partner", table_name="partner_statement")
    op.drop_table("partner_statement")
