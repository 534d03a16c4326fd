"""service items priced by the ruleset: a billing account's service item either names a ruleset
service (its price and VAT rate come from the ruleset version the cycle uses, so the row has none)
or carries an explicit unit price and VAT rate

Revision ID: 0007_service_item_prices
Revises: 0001 (after 0003_billing, which creates the table)
"""

from __future__ import annotations

from alembic import op

import store.types

revision = "0007_service_item_prices"
down_revision = "0001"
branch_labels = ("service_item_prices",)
depends_on = "0003_billing"


def upgrade() -> None:
    with op.batch_alter_table("billing_service_item") as batch:
        batch.alter_column("unit_price", existing_type=store.types.ExactDecimal(length=64), nullable=True)
        batch.alter_column("tax_rate", existing_type=store.types.ExactDecimal(length=64), nullable=True)


def downgrade() -> None:
    # rows priced by the ruleset have no price of their own: they cannot go back
    op.execute("DELETE FROM billing_service_item WHERE unit_price IS NULL OR tax_rate IS NULL")
    with op.batch_alter_table("billing_service_item") as batch:
        batch.alter_column("unit_price", existing_type=store.types.ExactDecimal(length=64), nullable=False)
        batch.alter_column("tax_rate", existing_type=store.types.ExactDecimal(length=64), nullable=False)
