"""An index on the collection rows of an open item (all statuses): a collection run asks, for
every item it gathers, whether it is live elsewhere and how often it was collected before, in
chunks of item ids, instead of one scan per item

Revision ID: 0022_collection_item_index
Revises: 0020_sepa_collections
"""

from __future__ import annotations

from alembic import op

revision = "0022_collection_item_index"
down_revision = "0020_sepa_collections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_collection_item_item", "collection_item", ["tenant_id", "item_id"])


def downgrade() -> None:
    op.drop_index("ix_collection_item_item", table_name="collection_item")
