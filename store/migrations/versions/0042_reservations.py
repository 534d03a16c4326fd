"""Reservations (issue 18): an EVSE held for a token or a partner from start to expiry, sent to the
charger (ReserveNow/CancelReservation), its answer and lifecycle; see ``store.reservations``

Revision ID: 0042_reservations
Revises: 0041_meter_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0042_reservations"
down_revision = "0041_meter_keys"
branch_labels = None
depends_on = "0002_ocpp"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "reservation",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("ocpp_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.String(40), sa.ForeignKey("location.id"), nullable=False),
        sa.Column("charge_point_id", sa.String(40), sa.ForeignKey("charge_point.id"), nullable=False),
        sa.Column("evse_uid", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("id_tag", sa.String(64), nullable=False),
        sa.Column("token_id", sa.String(40), sa.ForeignKey("token.id"), nullable=True),
        sa.Column("partner_id", sa.String(40), sa.ForeignKey("partner.id"), nullable=True),
        _ts("start"),
        _ts("expiry"),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("ocpp_version", sa.String(8), nullable=False),
        sa.Column("charger_status", sa.String(20), nullable=False),
        sa.Column("cancel_status", sa.String(20), nullable=False),
        _ts("sent_at", True),
        _ts("ended_at", True),
        sa.Column("end_reason", sa.String(300), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("charge_point_id", "ocpp_id"),
    )
    op.create_index("ix_reservation_tenant_id", "reservation", ["tenant_id"])
    op.create_index("ix_reservation_status_expiry", "reservation", ["status", "expiry"])  # the sweep
    op.create_index("ix_reservation_evse", "reservation", ["tenant_id", "evse_uid", "expiry"])
    op.create_index("ix_reservation_transaction_id", "reservation", ["transaction_id"])


def downgrade() -> None:
    for ix in ("ix_reservation_transaction_id", "ix_reservation_evse", "ix_reservation_status_expiry",
               "ix_reservation_tenant_id"):
        op.drop_index(ix, "reservation")
    op.drop_table("reservation")
