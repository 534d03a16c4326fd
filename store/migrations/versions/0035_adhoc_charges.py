"""ad-hoc charges paid by card (issue 16): one row per charge from the QR page to the receipt

Revision ID: 0035_adhoc_charges
Revises: 0027_price_series
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0035_adhoc_charges"
down_revision = "0033_clearing"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, store.types.UTCDateTime(timezone=True), nullable=nullable)


def _dec(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, store.types.ExactDecimal(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "adhoc_charge",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("evse_id", sa.String(length=40), nullable=False),
        sa.Column("evse_uid", sa.String(length=64), nullable=False),
        sa.Column("charge_point_id", sa.String(length=40), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("id_tag", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        _dec("preauth_amount", False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("payment_ref", sa.String(length=100), nullable=False),
        sa.Column("decline_code", sa.String(length=60), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(length=40), nullable=True),
        sa.Column("ruleset_version_id", sa.String(length=40), nullable=True),
        _dec("energy_kwh"), _dec("net"), _dec("tax"), _dec("gross"),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("tax_groups", sa.JSON(), nullable=False),
        _dec("captured"), _dec("released"), _dec("refunded", False),
        sa.Column("receipt_number", sa.String(length=40), nullable=False),
        sa.Column("receipt_pdf", sa.LargeBinary(), nullable=True),
        _ts("receipt_sent_at", True),
        sa.Column("item_id", sa.String(length=40), nullable=True),
        _ts("started_at", True), _ts("stopped_at", True), _ts("created_at"), _ts("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
        sa.UniqueConstraint("id_tag"),
    )
    op.create_index("ix_adhoc_charge_payment", "adhoc_charge", ["provider", "payment_ref"])
    op.create_index("ix_adhoc_charge_tenant", "adhoc_charge", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_adhoc_charge_tenant", table_name="adhoc_charge")
    op.drop_index("ix_adhoc_charge_payment", table_name="adhoc_charge")
    op.drop_table("adhoc_charge")
