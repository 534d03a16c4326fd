"""The journal: the chart of accounts per tenant, personal debtor accounts, journal entries and
their lines (append-only), closed posting periods, posting batches with the entries they took
(each entry once) and their archived files, the tenant's SFTP target and each batch's delivery

Revision ID: 0025_journal
Revises: 0020_sepa_collections
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0025_journal"
down_revision = "0024_dunning"
branch_labels = None
depends_on = None

_APPEND_ONLY = ("journal_entry", "journal_line", "accounting_period", "posting_batch", "posting_batch_entry",
                "posting_batch_file")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def _s(name: str, n: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=n), nullable=nullable)


def _tenant() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"])


def upgrade() -> None:
    op.create_table(
        "accounting_chart",
        _s("tenant_id", 40), sa.Column("chart", sa.JSON(), nullable=False), _s("updated_by", 40), _ts("updated_at"),
        _tenant(), sa.PrimaryKeyConstraint("tenant_id"))
    op.create_table(
        "accounting_debtor",
        _s("tenant_id", 40), _s("customer_id", 40), _s("account", 9), _ts("created_at"),
        _tenant(), sa.PrimaryKeyConstraint("tenant_id", "customer_id"),
        sa.UniqueConstraint("tenant_id", "account", name="uq_accounting_debtor_account"))
    op.create_table(
        "accounting_period",
        _s("tenant_id", 40), _s("period", 7), _s("closed_by", 40), _ts("closed_at"),
        _tenant(), sa.PrimaryKeyConstraint("tenant_id", "period"))
    op.create_table(
        "journal_entry",
        _s("id", 40), _s("tenant_id", 40), _s("source_kind", 30), _s("source_id", 40), _s("document", 300),
        sa.Column("document_date", sa.Date(), nullable=False), sa.Column("posting_date", sa.Date(), nullable=False),
        _s("period", 7), _s("text", 300), _s("corrects", 40), _ts("created_at"),
        _tenant(), sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "source_id", "corrects", name="uq_journal_entry_source"))
    op.create_index("ix_journal_entry_period", "journal_entry", ["tenant_id", "period"])
    op.create_table(
        "journal_line",
        _s("id", 40), _s("tenant_id", 40), _s("entry_id", 40), sa.Column("line_no", sa.Integer(), nullable=False),
        _s("account", 9), _s("side", 6), sa.Column("amount", store.types.ExactDecimal(length=64), nullable=False),
        _s("currency", 3), _s("role", 20), _s("revenue_kind", 20), _s("vat", 20), _s("bu_key", 4),
        _tenant(), sa.ForeignKeyConstraint(["entry_id"], ["journal_entry.id"]), sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_journal_line_entry", "journal_line", ["entry_id"])
    op.create_index("ix_journal_line_account", "journal_line", ["tenant_id", "account"])
    op.create_table(
        "posting_batch",
        _s("id", 40), _s("tenant_id", 40), sa.Column("number", sa.Integer(), nullable=False), _s("period", 10),
        sa.Column("entries", sa.Integer(), nullable=False), _s("sha256", 64), _s("created_by", 40), _ts("created_at"),
        _tenant(), sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "number", name="uq_posting_batch_number"))
    op.create_table(
        "posting_batch_entry",
        _s("entry_id", 40), _s("batch_id", 40), _s("tenant_id", 40),
        _tenant(), sa.ForeignKeyConstraint(["entry_id"], ["journal_entry.id"]),
        sa.ForeignKeyConstraint(["batch_id"], ["posting_batch.id"]), sa.PrimaryKeyConstraint("entry_id"))
    op.create_index("ix_posting_batch_entry_batch", "posting_batch_entry", ["batch_id"])
    op.create_table(
        "posting_batch_file",
        _s("batch_id", 40), _s("format", 20), _s("tenant_id", 40), _s("filename", 200), _s("media_type", 100),
        sa.Column("content", sa.LargeBinary(), nullable=False), _s("sha256", 64),
        _tenant(), sa.ForeignKeyConstraint(["batch_id"], ["posting_batch.id"]),
        sa.PrimaryKeyConstraint("batch_id", "format"))
    op.create_table(
        "accounting_sftp_target",
        _s("tenant_id", 40), _s("host", 255), sa.Column("port", sa.Integer(), nullable=False), _s("username", 100),
        _s("password", 200), _s("private_key", 10000), _s("directory", 500), _s("host_key", 2000),
        _s("updated_by", 40), _ts("updated_at"), _tenant(), sa.PrimaryKeyConstraint("tenant_id"))
    op.create_table(
        "posting_batch_delivery",
        _s("batch_id", 40), _s("tenant_id", 40), _s("status", 20), _s("target", 800),
        sa.Column("files", sa.JSON(), nullable=False), _s("error", 1000), _ts("updated_at"),
        _tenant(), sa.ForeignKeyConstraint(["batch_id"], ["posting_batch.id"]), sa.PrimaryKeyConstraint("batch_id"))
    dialect = op.get_bind().dialect.name
    for table in _APPEND_ONLY:
        for ddl in append_only_ddl(dialect, table):
            op.execute(ddl)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in _APPEND_ONLY:
        for ddl in drop_append_only_ddl(dialect, table):
            op.execute(ddl)
    for table in ("posting_batch_delivery", "accounting_sftp_target", "posting_batch_file", "posting_batch_entry", "posting_batch", "journal_line", "journal_entry",
                  "accounting_period", "accounting_debtor", "accounting_chart"):
        op.drop_table(table)
