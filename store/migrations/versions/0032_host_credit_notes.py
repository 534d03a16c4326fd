"""Host credit notes (issue 15): a partner's billing details (address, language, VAT status, phone,
tax number, BIC) and the self-billing credit notes (Gutschriften) issued from partner statements,
numbered per tenant without gaps; a correction is a new note naming the one it corrects

Revision ID: 0032_host_credit_notes
Revises: 0027_price_series
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0032_host_credit_notes"
down_revision = "0035_adhoc_charges"
branch_labels = None
# the statements it refers to come from 0006 (another branch), payables from 0021
depends_on = ("0006_partner_statements", "0021_refunds_payables")

# street, postal code and city came with 0033_clearing
_PARTNER_COLUMNS = (("language", 2), ("phone", 40), ("tax_number", 30), ("bic", 11), ("vat_status", 20))


def _s(name: str, n: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=n), nullable=nullable)


def _dec(name: str) -> sa.Column:
    return sa.Column(name, store.types.ExactDecimal(length=64), nullable=False)


def upgrade() -> None:
    for name, n in _PARTNER_COLUMNS:
        op.add_column("partner", sa.Column(name, sa.String(length=n), nullable=False, server_default=""))
    op.create_table(
        "host_credit_note",
        _s("id", 40), _s("tenant_id", 40), _s("number", 40), sa.Column("number_seq", sa.Integer(), nullable=False),
        _s("statement_id", 40), _s("partner_id", 40), _s("corrects_id", 40, nullable=True),
        _s("corrects_number", 40, nullable=True), sa.Column("issue_date", sa.Date(), nullable=False),
        _s("currency", 3), _dec("net"), _dec("tax"), _dec("gross"), _dec("payable"), _dec("netted"), _s("vat_status", 20),
        sa.Column("vat_rate", store.types.ExactDecimal(length=64), nullable=False),
        _s("language", 2), sa.Column("formats", sa.JSON(), nullable=False), _s("payable_id", 40, nullable=True),
        _s("reason", 500), _s("issued_by", 40),
        sa.Column("issued_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["statement_id"], ["partner_statement.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "number_seq", name="uq_host_credit_note_number"),
    )
    op.create_index("uq_host_credit_note_statement", "host_credit_note", ["tenant_id", "statement_id"], unique=True,
                    sqlite_where=sa.text("corrects_id IS NULL"), postgresql_where=sa.text("corrects_id IS NULL"))
    op.create_index("ix_host_credit_note_partner", "host_credit_note", ["tenant_id", "partner_id"])


def downgrade() -> None:
    op.drop_index("ix_host_credit_note_partner", table_name="host_credit_note")
    op.drop_index("uq_host_credit_note_statement", table_name="host_credit_note")
    op.drop_table("host_credit_note")
    for name, _n in reversed(_PARTNER_COLUMNS):
        op.drop_column("partner", name)
