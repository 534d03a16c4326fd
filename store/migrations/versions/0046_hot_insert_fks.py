"""Month-end's two largest insert tables without foreign keys (issue 17 part 3): an invoice's
lines (``billing_invoice_line``, ~200 per account) and its billed sessions (``billing_session``,
~100) no longer reference ``billing_invoice`` and ``tenant``.

On PostgreSQL each of those references is a lookup and a row lock of the parent row per inserted
row (about 15-20 microseconds of server CPU per row, more than the insert and its indexes): a
third of the server's work per account at month-end. No query needs them (every join states its
condition), and both tables are written only by ``store.billing`` in the transaction that writes
their invoice (or finds it: a rebuilt draft), with its tenant: the code keeps what the keys
checked. Nothing deletes an invoice. The indexes stay (the lines' by invoice and by session, the
billed sessions' unique (tenant, session, rating)).

Revision ID: 0046_hot_insert_fks
Revises: 0045_load_profiles
"""

from __future__ import annotations

from alembic import op

revision = "0046_hot_insert_fks"
down_revision = "0045_load_profiles"
branch_labels = None
depends_on = None

# SQLite's foreign keys have no names: batch mode names them by this convention to drop them
_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
_KEYS = (("billing_invoice_line", "invoice_id", "billing_invoice"), ("billing_invoice_line", "tenant_id", "tenant"),
         ("billing_session", "invoice_id", "billing_invoice"), ("billing_session", "tenant_id", "tenant"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, _parent in _KEYS:
            op.drop_constraint(f"{table}_{column}_fkey", table, type_="foreignkey")
        return
    for table in ("billing_invoice_line", "billing_session"):
        with op.batch_alter_table(table, naming_convention=_NAMES) as b:
            for t, column, parent in _KEYS:
                if t == table:
                    b.drop_constraint(f"fk_{table}_{column}_{parent}", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, parent in _KEYS:
            op.create_foreign_key(f"{table}_{column}_fkey", table, parent, [column], ["id"])
        return
    for table in ("billing_invoice_line", "billing_session"):
        with op.batch_alter_table(table) as b:
            for t, column, parent in _KEYS:
                if t == table:
                    b.create_foreign_key(f"fk_{table}_{column}_{parent}", parent, [column], ["id"])
