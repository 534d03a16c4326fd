"""ocpp gateway: transactions, meter values, signed data, transaction events, charger state,
access rules, authorization log

Revision ID: 0002_ocpp
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0002_ocpp"
# the brief named it "0001_initial"; the initial revision's id is "0001" (its file is 0001_initial.py)
down_revision = "0001"
branch_labels = ("ocpp",)
depends_on = None


def _s(n: int) -> sa.String:
    return sa.String(length=n)


def upgrade() -> None:
    dec = store.types.ExactDecimal()
    utc = store.types.UTCDateTime(timezone=True)
    op.create_table(
        "ocpp_transaction",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", _s(40), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("charge_point_id", _s(40), sa.ForeignKey("charge_point.id"), nullable=False),
        sa.Column("identity", _s(64), nullable=False),
        sa.Column("ocpp_version", _s(8), nullable=False),
        sa.Column("transaction_ref", _s(64), nullable=False),
        sa.Column("start_key", _s(200), nullable=True),
        sa.Column("location_id", _s(40), sa.ForeignKey("location.id"), nullable=True),
        sa.Column("evse_uid", _s(64), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("id_tag", _s(64), nullable=False),
        sa.Column("auth_status", _s(20), nullable=False),
        sa.Column("start", utc, nullable=True),
        sa.Column("stop", utc, nullable=True),
        sa.Column("meter_start_wh", dec, nullable=True),
        sa.Column("meter_stop_wh", dec, nullable=True),
        sa.Column("stop_reason", _s(40), nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("last_seq_no", sa.Integer(), nullable=False),
        sa.Column("status", _s(24), nullable=False),
        sa.Column("review_reason", _s(300), nullable=False),
        sa.Column("session_id", _s(40), sa.ForeignKey("charging_session.id"), nullable=True),
        sa.Column("external_id", _s(100), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.UniqueConstraint("charge_point_id", "transaction_ref"),
        sa.UniqueConstraint("charge_point_id", "start_key"),
    )
    op.create_index("ix_ocpp_transaction_tenant_id", "ocpp_transaction", ["tenant_id"])
    op.create_index("ix_ocpp_transaction_charge_point_id", "ocpp_transaction", ["charge_point_id"])
    op.create_index("ix_ocpp_transaction_location_id", "ocpp_transaction", ["location_id"])
    op.create_index("ix_ocpp_tx_tenant_status", "ocpp_transaction", ["tenant_id", "status"])

    op.create_table(
        "ocpp_meter_value",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("ocpp_transaction.id"), nullable=False),
        sa.Column("at", utc, nullable=False),
        sa.Column("energy_wh", dec, nullable=True),
        sa.Column("power_w", dec, nullable=True),
        sa.Column("context", _s(30), nullable=False),
        sa.UniqueConstraint("transaction_id", "at"),
    )
    op.create_index("ix_ocpp_meter_value_transaction_id", "ocpp_meter_value", ["transaction_id"])

    op.create_table(
        "ocpp_signed_data",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", _s(40), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("ocpp_transaction.id"), nullable=False),
        sa.Column("at", utc, nullable=False),
        sa.Column("format", _s(40), nullable=False),
        sa.Column("context", _s(30), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("signing_method", _s(60), nullable=False),
        sa.Column("public_key", _s(2500), nullable=False),
        sa.Column("sha256", _s(64), nullable=False),
        sa.UniqueConstraint("transaction_id", "sha256"),
    )
    op.create_index("ix_ocpp_signed_data_transaction_id", "ocpp_signed_data", ["transaction_id"])

    op.create_table(
        "ocpp_transaction_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("ocpp_transaction.id"), nullable=False),
        sa.Column("seq_no", sa.Integer(), nullable=False),
        sa.Column("event_type", _s(10), nullable=False),
        sa.Column("trigger_reason", _s(40), nullable=False),
        sa.Column("at", utc, nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("transaction_id", "seq_no", "event_type"),
    )
    op.create_index("ix_ocpp_transaction_event_transaction_id", "ocpp_transaction_event", ["transaction_id"])

    op.create_table(
        "ocpp_charge_point_state",
        sa.Column("charge_point_id", _s(40), sa.ForeignKey("charge_point.id"), primary_key=True),
        sa.Column("tenant_id", _s(40), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("ocpp_version", _s(8), nullable=False),
        sa.Column("vendor", _s(100), nullable=False),
        sa.Column("model", _s(100), nullable=False),
        sa.Column("serial_number", _s(100), nullable=False),
        sa.Column("firmware_version", _s(100), nullable=False),
        sa.Column("last_boot_at", utc, nullable=True),
        sa.Column("last_seen_at", utc, nullable=True),
        sa.Column("connectors", sa.JSON(), nullable=False),
    )
    op.create_index("ix_ocpp_charge_point_state_tenant_id", "ocpp_charge_point_state", ["tenant_id"])

    op.create_table(
        "ocpp_access_rule",
        sa.Column("id", _s(40), primary_key=True),
        sa.Column("tenant_id", _s(40), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("location_id", _s(40), sa.ForeignKey("location.id"), nullable=False),
        sa.Column("evse_uid", _s(64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effect", _s(10), nullable=False),
        sa.Column("subject", _s(20), nullable=False),
        sa.Column("value", _s(100), nullable=False),
        sa.Column("time_from", _s(5), nullable=False),
        sa.Column("time_to", _s(5), nullable=False),
        sa.Column("weekdays", sa.JSON(), nullable=False),
        sa.Column("description", _s(300), nullable=False),
        sa.Column("created_at", utc, nullable=False),
    )
    op.create_index("ix_ocpp_access_rule_tenant_id", "ocpp_access_rule", ["tenant_id"])
    op.create_index("ix_ocpp_access_rule_location_id", "ocpp_access_rule", ["location_id"])

    op.create_table(
        "ocpp_authorization",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", _s(40), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("at", utc, nullable=False),
        sa.Column("charge_point_id", _s(40), nullable=False),
        sa.Column("location_id", _s(40), nullable=True),
        sa.Column("evse_uid", _s(64), nullable=False),
        sa.Column("id_tag", _s(64), nullable=False),
        sa.Column("token_id", _s(40), nullable=True),
        sa.Column("contract_id", _s(40), nullable=True),
        sa.Column("context", _s(30), nullable=False),
        sa.Column("status", _s(20), nullable=False),
        sa.Column("reason", _s(60), nullable=False),
        sa.Column("rule_id", _s(40), nullable=True),
    )
    op.create_index("ix_ocpp_authorization_tenant_id", "ocpp_authorization", ["tenant_id"])
    op.create_index("ix_ocpp_auth_tenant_location_at", "ocpp_authorization", ["tenant_id", "location_id", "at"])


def downgrade() -> None:
    for name in ("ocpp_authorization", "ocpp_access_rule", "ocpp_charge_point_state", "ocpp_transaction_event",
                 "ocpp_signed_data", "ocpp_meter_value", "ocpp_transaction"):
        op.drop_table(name)
