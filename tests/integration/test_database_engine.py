"""How the engine talks to its databases: settings that keep a batch's cost flat as cases accumulate."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from earlyhelp.persistence.database import make_engine

pytestmark = pytest.mark.integration


def test_postgresql_sessions_plan_each_query_with_its_values(postgres_url):
    # A generic plan made while the tables were small seq-scans `key IN (...)` forever after.
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar_one() == "force_custom_plan"
    engine.dispose()


def test_sqlite_transactions_take_the_write_lock_at_begin(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.connection.dbapi_connection.in_transaction
    engine.dispose()
