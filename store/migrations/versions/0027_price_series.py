"""Price series with validity intervals (each imported point says where it ends, so a gap between
two imported files is a gap, not the previous price) and the trace of partner statement lines
(reimbursement and commission lines name the rule and the intervals behind their amount)

Revision ID: 0027_price_series
Revises: 0020_sepa_collections
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0027_price_series"
down_revision = "0026_user_passwords"
branch_labels = None
# the statement lines it adds a column to come from 0006/0009 (another branch)
depends_on = ("0009_partner_stmt_corrections",)


def upgrade() -> None:
    op.add_column("price_point", sa.Column("ends_at", store.types.UTCDateTime(timezone=True), nullable=True))
    op.add_column("partner_statement_line", sa.Column("trace", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("partner_statement_line", "trace")
    op.drop_column("price_point", "ends_at")
