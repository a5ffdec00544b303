"""How the engine talks to its databases: settings that keep a batch's cost flat as cases accumulate."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text

from earlyhelp.persistence.case_store import Update, write_all
from earlyhelp.persistence.database import among, make_engine
from earlyhelp.persistence.tables import cases, outbox
from tests.clock import now

pytestmark = pytest.mark.integration


def prepared_statements(conn) -> list[tuple[str, int, int]]:
    return [tuple(r) for r in conn.execute(text(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE from_sql = false"))]


def test_postgresql_sessions_plan_each_look_up_with_its_values(postgres_url):
    # A generic plan made while the tables were small seq-scans `key = ANY(...)` forever after: psycopg's
    # default prepares a statement after five runs, and PostgreSQL would then reuse one.
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        for _ in range(8):
            conn.execute(select(cases.c.case_id).where(among(conn, cases.c.case_id, ["a", "b"]))).all()
        assert prepared_statements(conn) == []
    engine.dispose()


def test_a_batchs_inserts_alone_reuse_one_plan_and_its_updates_are_planned_each_time(postgres_url):
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        for i in range(8):  # PostgreSQL plans the first five runs with their values, then compares
            write_all(conn, [(outbox, [{"event_id": f"plan-{i}", "exchange": "earlyhelp.events", "routing_key": "x",
                                        "body": b"{}", "mandatory": False, "created_at": now(), "attempts": 0}])])
        for _ in range(8):
            write_all(conn, [], [Update(outbox, [{"id": -1, "attempts": 1}], "id")])
        [(statement, generic, custom)] = prepared_statements(conn)
        conn.rollback()
    engine.dispose()
    assert "INSERT INTO outbox" in statement and "UPDATE" not in statement
    assert (generic, custom) == (3, 5), "the inserts' plan made once and reused from the sixth run"


def test_sqlite_transactions_take_the_write_lock_at_begin(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.connection.dbapi_connection.in_transaction
    engine.dispose()
