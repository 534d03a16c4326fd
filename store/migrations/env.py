"""Alembic environment, driven programmatically by ``store.db.migrate``: the caller hands over a
live connection in ``config.attributes``; there is no alembic.ini and no URL to configure."""

from __future__ import annotations

from alembic import context

import store.models  # noqa: F401  (registers the tables on the metadata)
from store.models import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = config.attributes["engine"]
        with engine.begin() as conn:
            _run(conn)
    else:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run store.db.migrate(engine)")
run_migrations_online()
