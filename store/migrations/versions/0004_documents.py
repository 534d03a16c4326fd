"""documents: the archive of issued documents (bytes + sha256) and their e-mail deliveries

Revision ID: 0004_documents
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0004_documents"
# the initial revision's id is "0001" (its file is 0001_initial.py)
down_revision = "0001"
branch_labels = ("documents",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("media_type", sa.String(length=60), nullable=False),
        sa.Column("filename", sa.String(length=120), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("gross_total", store.types.ExactDecimal(length=64), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("source_invoice_id", sa.String(length=40), nullable=True),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("corrects_number", sa.String(length=40), nullable=True),
        sa.Column("delivery_status", sa.String(length=20), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "number", "format", name="uq_document_number_format"),
    )
    op.create_index("ix_document_tenant_created", "document", ["tenant_id", "id"], unique=False)
    op.create_index("ix_document_tenant_invoice", "document", ["tenant_id", "source_invoice_id"], unique=False)
    op.create_index("ix_document_tenant_corrects", "document", ["tenant_id", "corrects_number"], unique=False)
    op.create_table(
        "document_delivery",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("formats", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("requested_by", sa.String(length=40), nullable=False),
        sa.Column("next_attempt_at", store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "number", "seq", name="uq_document_delivery_seq"),
    )
    op.create_index("ix_document_delivery_status", "document_delivery", ["status", "next_attempt_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_document_delivery_status", table_name="document_delivery")
    op.drop_table("document_delivery")
    op.drop_index("ix_document_tenant_corrects", table_name="document")
    op.drop_index("ix_document_tenant_invoice", table_name="document")
    op.drop_index("ix_document_tenant_created", table_name="document")
    op.drop_table("document")
