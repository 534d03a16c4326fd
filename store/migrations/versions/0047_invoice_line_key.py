"""Month-end's largest insert table with one index instead of three (issue 17 part 3): an invoice
line's key is (``invoice_id``, ``seq``) — the number its invoice gives it — instead of a surrogate
``id`` from a sequence, and the two secondary indexes go: by invoice (the key's first column now)
and by (tenant, session).

Month-end writes ~200 lines per account; on PostgreSQL each index entry is work of the server's
per row (measured with COPY of 60,300 month-end lines on session 14's VM, server CPU per line:
~6.0 us with the three indexes, ~2.8 us with the key alone). Nothing reads a line by its ``id``
(every reader orders a line by its invoice and ``seq``). The one reader by session,
``store.cycle.billed_net_of_session`` (corrections), finds the session's invoices through
``billing_session`` (the billed sessions: its key (tenant, session, rating)) and their lines by
the new key.

Revision ID: 0047_invoice_line_key
Revises: 0046_hot_insert_fks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0047_invoice_line_key"
down_revision = "0046_hot_insert_fks"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.drop_index("ix_billing_invoice_line_session", table_name="billing_invoice_line")
    op.drop_index("ix_billing_invoice_line_invoice", table_name="billing_invoice_line")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("billing_invoice_line", "id")  # and its primary key and sequence
        op.create_primary_key("billing_invoice_line_pkey", "billing_invoice_line", ["invoice_id", "seq"])
        return
    with op.batch_alter_table("billing_invoice_line", recreate="always") as b:
        b.drop_column("id")
        b.create_primary_key("pk_billing_invoice_line", ["invoice_id", "seq"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("billing_invoice_line_pkey", "billing_invoice_line", type_="primary")
        op.add_column("billing_invoice_line", sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False))
        op.create_primary_key("billing_invoice_line_pkey", "billing_invoice_line", ["id"])
    else:
        with op.batch_alter_table("billing_invoice_line", recreate="always") as b:
            b.add_column(sa.Column("id", _ID, nullable=True))
        op.execute("UPDATE billing_invoice_line SET id = rowid")
        with op.batch_alter_table("billing_invoice_line", recreate="always") as b:
            b.alter_column("id", existing_type=_ID, nullable=False)
            b.create_primary_key("pk_billing_invoice_line", ["id"])
    op.create_index("ix_billing_invoice_line_invoice", "billing_invoice_line", ["invoice_id"], unique=False)
    op.create_index("ix_billing_invoice_line_session", "billing_invoice_line", ["tenant_id", "session_id"],
                    unique=False)
