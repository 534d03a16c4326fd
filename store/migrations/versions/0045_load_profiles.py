"""Load limits, what issue 18 left: the rate unit a charger accepts for charging profiles
(``ocpp_charge_point_state.rate_units``), profiles sent in amperes (``charging_limit.rate_unit``,
``limit_a`` and the ``phases``/``voltage_v`` the watts were converted with) and TxDefaultProfiles,
which name no transaction and no priority (``charging_limit.purpose``)

Revision ID: 0045_load_profiles
Revises: 0044_load_limits
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0045_load_profiles"
down_revision = "0044_load_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocpp_charge_point_state") as b:
        b.add_column(sa.Column("rate_units", sa.String(8), nullable=False, server_default=""))
    with op.batch_alter_table("charging_limit") as b:
        b.add_column(sa.Column("purpose", sa.String(20), nullable=False, server_default="TxProfile"))
        b.add_column(sa.Column("rate_unit", sa.String(1), nullable=False, server_default="W"))
        b.add_column(sa.Column("limit_a", store.types.ExactDecimal(), nullable=True))
        b.add_column(sa.Column("phases", sa.Integer(), nullable=True))
        b.add_column(sa.Column("voltage_v", sa.Integer(), nullable=True))
        b.alter_column("transaction_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                       nullable=True)
        b.alter_column("priority", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM charging_limit WHERE transaction_id IS NULL")
    with op.batch_alter_table("charging_limit") as b:
        b.alter_column("priority", existing_type=sa.Integer(), nullable=False)
        b.alter_column("transaction_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                       nullable=False)
        for col in ("voltage_v", "phases", "limit_a", "rate_unit", "purpose"):
            b.drop_column(col)
    with op.batch_alter_table("ocpp_charge_point_state") as b:
        b.drop_column("rate_units")
