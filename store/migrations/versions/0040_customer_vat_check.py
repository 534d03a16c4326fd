"""The last online check of a customer's VAT ID (VIES; api.vies): the ID checked, the outcome
(valid / invalid / unchecked), when, VIES's consultation number, name and address, or why it
could not tell (JSON, NULL: never checked)

Revision ID: 0040_customer_vat_check
Revises: 0037_payout_schedule
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0040_customer_vat_check"
down_revision = "0037_payout_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customer") as b:
        b.add_column(sa.Column("vat_check", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer") as b:
        b.drop_column("vat_check")
