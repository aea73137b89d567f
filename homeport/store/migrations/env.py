"""Alembic's entry point, run by `homeport.store.database.migrate` with a connection."""

from __future__ import annotations

from alembic import context

from homeport.store.database import VERSION_TABLE
from homeport.store.schema import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
