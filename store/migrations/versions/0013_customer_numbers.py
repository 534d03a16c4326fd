"""Customer numbers: ``customer.number`` (unique per tenant), drawn from the tenant's ``CUS``
number series; existing customers are numbered in creation order (``K-10001``, ...) and the series
continues after them.

Revision ID: 0013_customer_numbers
Revises: 0011_manual_hold_consumed
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_customer_numbers"
down_revision = "0011_manual_hold_consumed"
branch_labels = None
depends_on = "0003_billing"  # the number series table is the billing branch's

# as store.customers has them (a migration does not import code that may change later)
SERIES, PREFIX, START = "CUS", "K-", 10001


def upgrade() -> None:
    op.add_column("customer", sa.Column("number", sa.String(length=40), nullable=True))
    conn = op.get_bind()
    customer = sa.table("customer", sa.column("id", sa.String), sa.column("tenant_id", sa.String),
                        sa.column("number", sa.String), sa.column("created_at", sa.DateTime))
    series = sa.table("billing_number_series", sa.column("tenant_id", sa.String), sa.column("series", sa.String),
                      sa.column("prefix", sa.String), sa.column("next_value", sa.Integer))
    rows = conn.execute(sa.select(customer.c.id, customer.c.tenant_id)
                        .order_by(customer.c.tenant_id, customer.c.created_at, customer.c.id)).all()
    next_of: dict[str, int] = {}
    for cid, tenant in rows:
        seq = next_of.get(tenant, START)
        conn.execute(sa.update(customer).where(customer.c.id == cid).values(number=f"{PREFIX}{seq}"))
        next_of[tenant] = seq + 1
    for tenant, nxt in next_of.items():
        have = conn.execute(sa.select(series.c.next_value).where(series.c.tenant_id == tenant,
                                                                 series.c.series == SERIES)).first()
        if have is None:
            conn.execute(sa.insert(series).values(tenant_id=tenant, series=SERIES, prefix=PREFIX, next_value=nxt))
    op.create_index("ux_customer_tenant_number", "customer", ["tenant_id", "number"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_customer_tenant_number", table_name="customer")
    conn = op.get_bind()
    conn.execute(sa.text("DELETE FROM billing_number_series WHERE series = :s"), {"s": SERIES})
    if conn.dialect.name == "sqlite":
        # SQLite drops the column in place (3.35+): a batch copy would DROP TABLE customer, which the
        # foreign keys of every table referring to customers refuse
        op.execute("ALTER TABLE customer DROP COLUMN number")
    else:
        op.drop_column("customer", "number")
