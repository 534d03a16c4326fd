"""contract document settings: the e-invoice formats the customer chose, the Leitweg-ID of public
buyers and the debtor IBAN of a SEPA direct-debit mandate

Revision ID: 0005_contract_documents
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_contract_documents"
down_revision = "0001"
branch_labels = ("contract_documents",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contract") as batch:
        batch.add_column(sa.Column("document_formats", sa.String(length=120), nullable=False, server_default=""))
        batch.add_column(sa.Column("leitweg_id", sa.String(length=46), nullable=False, server_default=""))
        batch.add_column(sa.Column("debtor_iban", sa.String(length=34), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("contract") as batch:
        batch.drop_column("debtor_iban")
        batch.drop_column("leitweg_id")
        batch.drop_column("document_formats")
