"""Database engines and migrations: SQLite (embedded default) or PostgreSQL (production, several workers)."""
from __future__ import annotations

from importlib.resources import files

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_text,
                               json_deserializer=orjson.loads, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # Take the write lock when a transaction begins: a deferred transaction that reads and then
        # writes can fail at once with "database is locked" when another connection wrote meanwhile.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    # No pool_pre_ping: it costs a round trip per transaction, and a connection lost to a restarted
    # PostgreSQL already fails its transaction as "database unavailable", which is retried on a new one.
    # psycopg prepares a statement after five runs by default, and PostgreSQL then reuses a generic plan made
    # while the tables were small: a seq scan for `key IN (...)` that grows with every stored case
    # (measured here: ~11 ms to ~80 ms a batch's query as the tables grew to 12,000 cases). So no statement
    # is prepared unless asked: each is planned with its values, and the look-ups keep their index scans.
    # The one asked for is a batch's inserts (case_store.write_all), whose plan is the same for any values
    # and cost a third of the statement to make afresh every time.
    connect_args = {"prepare_threshold": None}
    return create_engine(url, pool_size=5, max_overflow=5, json_serializer=json_text,
                         json_deserializer=orjson.loads, connect_args=connect_args, **kwargs)


def json_text(value) -> str:
    """orjson, both ways (json_deserializer=orjson.loads): the engine writes several JSON columns per message
    and the relay reads one per event; the standard library is ~5x slower. What is stored came through this
    or PostgreSQL's jsonb, so it is valid Unicode with integers inside 2**53 (schemas/decoding.py), which
    orjson reads as the standard library does."""
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" listener emits BEGIN itself
    cursor = dbapi_connection.cursor()
    # WAL lets readers (earlyhelp cases, report) run beside the engine's writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("earlyhelp.persistence") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database to `revision`; safe to run from several workers at once on PostgreSQL."""
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with make_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def among(conn, column, values):
    """`column IN values` for a batch's ids: on PostgreSQL `column = ANY(%s)` with the list as one array
    parameter. IN renders and binds one parameter per value at every execution (SQLAlchemy's expanding
    parameters: a few µs each, a hundred per batch query); an array is one value whatever its length."""
    values = list(values)
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    from sqlalchemy import any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
