"""eMSP clearing: statements per eMSP partner and month with their archived XLSX and CDR JSON, the
CDRs each states (a session once), disputes of the D-7 window, OCPI credentials, and the partners'
billing address (issue 15)

Revision ID: 0033_clearing
Revises: 0025_journal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0033_clearing"
down_revision = "0025_journal"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def _dec(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.ExactDecimal(length=64), nullable=nullable)


def _s(name: str, n: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=n), nullable=nullable)


def upgrade() -> None:
    for name, n in (("street", 200), ("postal_code", 20), ("city", 100)):
        op.add_column("partner", sa.Column(name, sa.String(length=n), nullable=False, server_default=""))
    op.create_table(
        "clearing_statement",
        _s("id", 40), _s("tenant_id", 40), _s("partner_id", 40), _s("month", 7), _ts("period_start"),
        _ts("period_end"), _s("workflow_id", 200), _s("status", 20), _s("currency", 3),
        sa.Column("cdrs", sa.Integer(), nullable=False), sa.Column("late", sa.Integer(), nullable=False),
        _dec("net_total"), _dec("tax_total"), _dec("gross_total"),
        sa.Column("xlsx", sa.LargeBinary(), nullable=True), _s("xlsx_sha256", 64),
        sa.Column("cdr_json", sa.LargeBinary(), nullable=True), _s("cdr_json_sha256", 64),
        _ts("sent_at", True), _ts("window_ends_at", True), _s("invoice_number", 40), _dec("invoice_net", True),
        _dec("invoice_gross", True), sa.Column("reverse_charge", sa.Boolean(), nullable=False),
        _s("started_by", 40), _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.UniqueConstraint("tenant_id", "partner_id", "month", name="uq_clearing_statement_month"),
    )
    op.create_index("ix_clearing_statement_status", "clearing_statement", ["tenant_id", "status"])
    op.create_table(
        "clearing_cdr",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False), _s("tenant_id", 40),
        _s("statement_id", 40), _s("partner_id", 40), _s("session_id", 40), _s("cdr_id", 100), _ts("start"),
        sa.Column("late", sa.Boolean(), nullable=False), _s("currency", 3), _dec("net"), _dec("tax"),
        _dec("tax_rate"), _dec("energy_kwh"), sa.Column("ocpi", sa.JSON(), nullable=False), _ts("last_updated"),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["statement_id"], ["clearing_statement.id"]),
        sa.UniqueConstraint("tenant_id", "session_id", name="uq_clearing_cdr_session"),
    )
    op.create_index("ix_clearing_cdr_statement", "clearing_cdr", ["statement_id", "cdr_id"])
    op.create_index("ix_clearing_cdr_partner", "clearing_cdr", ["tenant_id", "partner_id", "last_updated"])
    op.create_table(
        "clearing_dispute",
        _s("id", 40), _s("tenant_id", 40), _s("statement_id", 40), _s("cdr_id", 100), _s("reason", 1000),
        _dec("ours"), _dec("proposed"), _s("raised_by", 40), _s("raised_role", 20), _ts("raised_at"),
        _s("resolution", 10), _dec("resolved_net", True), _s("resolved_by", 40), _ts("resolved_at", True),
        _s("note", 1000),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["statement_id"], ["clearing_statement.id"]),
        sa.UniqueConstraint("statement_id", "cdr_id", name="uq_clearing_dispute_cdr"),
    )
    op.create_table(
        "ocpi_credentials",
        _s("id", 40), _s("tenant_id", 40), _s("partner_id", 40), _s("token_sha256", 64), _s("status", 20),
        _s("their_token", 200), _s("their_url", 500), sa.Column("their_roles", sa.JSON(), nullable=False),
        _ts("created_at"), _ts("updated_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.UniqueConstraint("token_sha256", name="uq_ocpi_credentials_token"),
    )
    op.create_index("ix_ocpi_credentials_partner", "ocpi_credentials", ["tenant_id", "partner_id"])


def downgrade() -> None:
    op.drop_index("ix_ocpi_credentials_partner", table_name="ocpi_credentials")
    op.drop_table("ocpi_credentials")
    op.drop_table("clearing_dispute")
    op.drop_index("ix_clearing_cdr_partner", table_name="clearing_cdr")
    op.drop_index("ix_clearing_cdr_statement", table_name="clearing_cdr")
    op.drop_table("clearing_cdr")
    op.drop_index("ix_clearing_statement_status", table_name="clearing_statement")
    op.drop_table("clearing_statement")
    for name in ("city", "postal_code", "street"):
        op.drop_column("partner", name)
