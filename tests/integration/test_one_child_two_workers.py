"""Two workers given notifications for one new child at the same instant open one case, not two.

Each worker's batch looks the child up (by the keyed hashes of its identifiers) before it writes. Without a
lock, worker B's look-up runs while worker A's new case is still uncommitted: both find nothing and the child
gets two records. On PostgreSQL (the only database for several workers) a batch takes a lock on each of its
children's hashes before it looks them up; B waits for A's commit, then finds A's case and links to it.

The interleaving is forced, not hoped for: A is held after its look-up, before its write and commit, until B
is either finished (the race lost) or seen waiting in pg_locks."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text

from earlyhelp.consumers.batch import BatchProcessor
from earlyhelp.consumers.delivery import Delivery
from earlyhelp.consumers.recording import case_id_for
from earlyhelp.persistence import case_store
from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.store import sql_transactions
from earlyhelp.persistence.tables import case_identifiers, cases
from earlyhelp.schemas import DEFAULT_DISTRICTS, NOTIFICATIONS_EXCHANGE
from tests.clock import now
from tests.factories import OMIT, encode, notification_body

pytestmark = pytest.mark.integration

CHILD = {"given_name": "Robin", "family_name": "Ashdown", "date_of_birth": "2015-05-06", "nhs_number": "9434765919"}


def referral(source: str, notification_id: str) -> Delivery:
    """The same child, referred by a school or by a GP."""
    if source == "school":
        body = notification_body(notification_id=notification_id, child=dict(CHILD))
    else:
        body = notification_body(notification_id=notification_id,
                                 referrer={"source": source, "organisation": "Maidstone GP", "school_urn": OMIT},
                                 child={**CHILD, "school_urn": OMIT})
    return Delivery(encode(body), NOTIFICATIONS_EXCHANGE, f"notification.{source}")


class HeldAfterLookUp:
    """Transactions whose store stops after the child look-up, until released: worker A, mid-batch."""

    def __init__(self, db) -> None:
        self.db, self.looked_up, self.release = db, threading.Event(), threading.Event()

    @contextmanager
    def __call__(self):
        with sql_transactions(self.db)() as store:  # the engine's own transactions, one look-up held
            find = store.find_identified

            def find_then_hold(*args, **kwargs):
                found = find(*args, **kwargs)
                self.looked_up.set()
                assert self.release.wait(30), "worker A was never released"
                return found

            store.find_identified = find_then_hold
            yield store


def waiting_on_a_lock(db) -> bool:
    with db.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                            ).scalar_one() > 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("fine_locks_limit", [case_store.CHILD_LOCKS_LIMIT, 0], ids=["a lock per hash", "one lock"])
def test_two_workers_given_one_new_child_at_once_open_one_case(database_url, fine_locks_limit, monkeypatch):
    monkeypatch.setattr(case_store, "CHILD_LOCKS_LIMIT", fine_locks_limit)
    db_a, db_b = make_engine(database_url), make_engine(database_url)
    held = HeldAfterLookUp(db_a)
    worker_a = BatchProcessor(db_a, now, DEFAULT_DISTRICTS, transactions=held)
    worker_b = BatchProcessor(db_b, now, DEFAULT_DISTRICTS)
    results: dict[str, object] = {}

    def run(name, worker, delivery):
        results[name] = worker.process([delivery]).handled[0]

    a = threading.Thread(target=run, args=("a", worker_a, referral("school", "oak-1")))
    b = threading.Thread(target=run, args=("b", worker_b, referral("health", "gp-1")))
    try:
        a.start()
        assert held.looked_up.wait(30), "worker A never reached its look-up"
        b.start()
        deadline = time.monotonic() + 30
        while b.is_alive() and not waiting_on_a_lock(db_b) and time.monotonic() < deadline:
            time.sleep(0.02)
        held.release.set()
        a.join(30)
        b.join(30)
        assert not a.is_alive() and not b.is_alive()

        assert results["a"].outcome == "opened"
        assert results["b"].outcome == "linked", results["b"]
        assert results["b"].case_id == case_id_for("school", "oak-1")
        with db_b.connect() as conn:
            assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == 1
            holders = conn.execute(select(func.count(func.distinct(case_identifiers.c.case_id)))).scalar_one()
            assert holders == 1
    finally:
        held.release.set()
        db_a.dispose()
        db_b.dispose()
