"""Collection runs of 100,000 items: an index on the collection rows of an open item (all
statuses; a run asks, for the items it gathers, whether each is live elsewhere and how often it
was collected before, in one read instead of one scan per item), and on PostgreSQL the archived
pain.008 files compressed with lz4 instead of pglz (a 75 MB file is stored in half the time;
where the server was built without lz4 the default stays)

Revision ID: 0022_collection_item_index
Revises: 0020_sepa_collections
"""

from __future__ import annotations

from alembic import op

revision = "0022_collection_item_index"
down_revision = "0027_price_series"
branch_labels = None
depends_on = None


def _compression(method: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""DO $$ BEGIN
            ALTER TABLE collection_file ALTER COLUMN content SET COMPRESSION {method};
        EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
        END $$""")


def upgrade() -> None:
    op.create_index("ix_collection_item_item", "collection_item", ["tenant_id", "item_id"])
    _compression("lz4")


def downgrade() -> None:
    _compression("default")
    op.drop_index("ix_collection_item_item", table_name="collection_item")
