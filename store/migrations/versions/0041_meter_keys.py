"""Eichrecht (issue 18): legal-for-trade meters' public keys (registered through the API or taken
from chargers, with source and first-seen time, revocable) and each session's check of its signed
meter data (``charging_session.meter_check``); the meter serial a 1.6J charger's BootNotification names

Revision ID: 0041_meter_keys
Revises: 0040_customer_vat_check
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0041_meter_keys"
down_revision = "0040_customer_vat_check"
branch_labels = None
depends_on = "0002_ocpp"  # alters ocpp_charge_point_state (the ocpp branch)


def upgrade() -> None:
    op.create_table(
        "meter_key",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("meter_serial", sa.String(64), nullable=False),
        sa.Column("charge_point_id", sa.String(40), sa.ForeignKey("charge_point.id"), nullable=True),
        sa.Column("evse_uid", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(2500), nullable=False),
        sa.Column("curve", sa.String(20), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("first_seen_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(300), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "meter_serial", "public_key"),
    )
    op.create_index("ix_meter_key_tenant_id", "meter_key", ["tenant_id"])
    op.create_index("ix_meter_key_charge_point_id", "meter_key", ["charge_point_id"])
    with op.batch_alter_table("charging_session") as b:
        b.add_column(sa.Column("meter_check", sa.String(40), nullable=False, server_default=""))
    with op.batch_alter_table("ocpp_charge_point_state") as b:
        b.add_column(sa.Column("meter_serial", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("ocpp_charge_point_state") as b:
        b.drop_column("meter_serial")
    with op.batch_alter_table("charging_session") as b:
        b.drop_column("meter_check")
    op.drop_index("ix_meter_key_charge_point_id", "meter_key")
    op.drop_index("ix_meter_key_tenant_id", "meter_key")
    op.drop_table("meter_key")
