"""Alembic environment: runs the migrations on the URL the engine was given."""
from alembic import context
from sqlalchemy import text

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
engine = make_engine(url)

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration on SQLite copies a table and drops the old one; with foreign keys on, the drop
        # of `cases` would cascade-delete every case's history, details and clocks. The pragma works only
        # outside a transaction: set on the driver's connection before SQLAlchemy begins one.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    if connection.dialect.name == "postgresql":
        # Several workers starting together: one migrates, the others wait, then find nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(7243190)"))
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left {len(broken)} rows whose foreign keys point nowhere")
    connection.commit()
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
engine.dispose()
