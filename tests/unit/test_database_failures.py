"""persistence/failures.py: a failed transaction sorted by cause (the database away, a lost race, a fault)."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from earlyhelp.persistence.case_store import ConcurrencyConflict
from earlyhelp.persistence.failures import is_database_unavailable, is_lost_race


def operational(text: str, invalidated: bool = False) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(text), connection_invalidated=invalidated)


@pytest.mark.parametrize("error", [
    operational("connection refused"),
    operational("server closed the connection unexpectedly"),
    sa_exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
    sa_exc.DBAPIError("SELECT 1", {}, Exception("terminating connection"), connection_invalidated=True),
    sa_exc.TimeoutError("QueuePool limit reached"),
], ids=["refused", "closed", "interface", "invalidated", "pool timeout"])
def test_a_database_away_is_an_outage_not_a_race(error):
    assert is_database_unavailable(error)
    assert not is_lost_race(error)


@pytest.mark.parametrize("error", [
    ConcurrencyConflict("case c-1 moved"),
    operational("database is locked"),
    operational("deadlock detected"),
    operational("could not serialize access due to concurrent update"),
    sa_exc.IntegrityError("INSERT", {}, Exception('duplicate key value violates unique constraint "cases_pkey"')),
    sa_exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: processed_messages.message_key")),
], ids=["version", "sqlite locked", "deadlock", "serialization", "case inserted first", "processed id first"])
def test_a_lost_race_is_retried_as_a_race(error):
    # The batch asks is_lost_race first: a PostgreSQL deadlock or serialization failure (an
    # OperationalError) is a race even though it would also pass for an outage.
    assert is_lost_race(error)


def test_sqlite_database_is_locked_is_contention_not_an_outage():
    assert not is_database_unavailable(operational("database is locked"))


@pytest.mark.parametrize("error", [
    sa_exc.IntegrityError("INSERT", {}, Exception('null value in column "state" violates not-null constraint')),
    ValueError("a bug"),
], ids=["other constraint", "bug"])
def test_anything_else_is_a_fault_in_the_work(error):
    assert not is_lost_race(error)
    assert not is_database_unavailable(error)
