"""Alembic environment: runs the migrations on the URL the engine was given."""
from alembic import context
from sqlalchemy import text

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
engine = make_engine(url)

with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # Several workers starting together: one migrates, the others wait, then find nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(7243190)"))
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
engine.dispose()
