"""Unassigned sessions: a session no billing account takes is stored as ``unassigned`` with a
reason, listed for review and brought into the next invoice once token/contract data resolve it

Sessions stored before this revision as ``rated`` without a customer although they name a token
(the defect: nobody would ever bill them, and nobody was told) become ``unassigned`` with the
reason ``not_checked``; ``POST /sessions/unassigned/resolve`` checks them against today's data
(a roaming partner's token, billed to nobody here, goes back to ``rated``).

Revision ID: 0012_session_assignment
Revises: 0011_manual_hold_consumed
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_session_assignment"
down_revision = "0011_manual_hold_consumed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("charging_session") as batch:
        batch.add_column(sa.Column("unassigned_reason", sa.String(40), nullable=False, server_default=""))
        batch.add_column(sa.Column("unassigned_message", sa.String(300), nullable=False, server_default=""))
    op.create_index("ix_session_tenant_status_token", "charging_session", ["tenant_id", "status", "token_uid"])
    cs = sa.table("charging_session", sa.column("status", sa.String), sa.column("customer_id", sa.String),
                  sa.column("token_uid", sa.String), sa.column("unassigned_reason", sa.String),
                  sa.column("unassigned_message", sa.String))
    op.execute(cs.update().where(cs.c.status == "rated", cs.c.customer_id.is_(None), cs.c.token_uid != "")
               .values(status="unassigned", unassigned_reason="not_checked",
                       unassigned_message="stored before evbill checked whom a session bills; "
                                          "resolve it to check its token and contract"))


def downgrade() -> None:
    cs = sa.table("charging_session", sa.column("status", sa.String), sa.column("current_rating_id", sa.String),
                  sa.column("rating_error", sa.String))
    # the old statuses: a priced session is 'rated' (customer or not), else as its rating left it
    op.execute(cs.update().where(cs.c.status == "unassigned", cs.c.current_rating_id.is_not(None))
               .values(status="rated"))
    op.execute(cs.update().where(cs.c.status == "unassigned", cs.c.current_rating_id.is_(None))
               .values(status="unrated"))
    op.drop_index("ix_session_tenant_status_token", table_name="charging_session")
    with op.batch_alter_table("charging_session") as batch:
        batch.drop_column("unassigned_message")
        batch.drop_column("unassigned_reason")
