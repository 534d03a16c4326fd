"""(tenant, account) and (tenant, customer) indexes for contracts and billing accounts

Every query is scoped to a tenant, so "tenant_id = ? AND account_id = ?" is the common shape.
Without statistics (a fresh SQLite file has none) SQLite's planner picked the single-column tenant
index for it and walked every contract or account of the tenant: at month-end, one scan of all
10,000 contracts per billing account. With the pair indexed it finds the handful it needs.

Revision ID: 0010_account_lookup_indexes
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0010_account_lookup_indexes"
down_revision = "0001"
branch_labels = ("account_lookup_indexes",)
depends_on = None


def upgrade() -> None:
    op.create_index("ix_contract_tenant_account", "contract", ["tenant_id", "account_id"])
    op.create_index("ix_billing_account_tenant_customer", "billing_account", ["tenant_id", "customer_id"])


def downgrade() -> None:
    op.drop_index("ix_billing_account_tenant_customer", table_name="billing_account")
    op.drop_index("ix_contract_tenant_account", table_name="contract")
