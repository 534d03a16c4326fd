"""Load limits (issue 18): a location's capacity (``location.capacity_kw``) and the charging
profiles sent to share it among running sessions, with the chargers' answers (``charging_limit``)

Revision ID: 0044_load_limits
Revises: 0043_partner_quotas
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0044_load_limits"
down_revision = "0043_partner_quotas"
branch_labels = None
depends_on = "0002_ocpp"  # references ocpp_transaction (the ocpp branch)


def upgrade() -> None:
    dec = store.types.ExactDecimal()
    utc = store.types.UTCDateTime(timezone=True)
    with op.batch_alter_table("location") as b:
        b.add_column(sa.Column("capacity_kw", dec, nullable=True))
    op.create_table(
        "charging_limit",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("location_id", sa.String(40), sa.ForeignKey("location.id"), nullable=False),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("ocpp_transaction.id"), nullable=False),
        sa.Column("charge_point_id", sa.String(40), sa.ForeignKey("charge_point.id"), nullable=False),
        sa.Column("evse_uid", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("limit_w", dec, nullable=False),
        sa.Column("capacity_w", dec, nullable=True),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("sent_at", utc, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("answered_at", utc, nullable=True),
        sa.Column("detail", sa.String(300), nullable=False),
    )
    op.create_index("ix_charging_limit_tenant_id", "charging_limit", ["tenant_id"])
    op.create_index("ix_charging_limit_transaction_id", "charging_limit", ["transaction_id"])
    op.create_index("ix_charging_limit_location_id", "charging_limit", ["location_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_charging_limit_location_id", "charging_limit")
    op.drop_index("ix_charging_limit_transaction_id", "charging_limit")
    op.drop_index("ix_charging_limit_tenant_id", "charging_limit")
    op.drop_table("charging_limit")
    with op.batch_alter_table("location") as b:
        b.drop_column("capacity_kw")
