"""The engine killed (SIGKILL) part-way through a stream and restarted loses nothing and does nothing twice."""
from __future__ import annotations

import time
from collections import defaultdict

import pytest
from sqlalchemy import func, select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import case_history, cases, outbox
from tests.factories import encode, notification_body

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAM = 400


def stored(database_url):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        n_cases = conn.execute(select(func.count()).select_from(cases)).scalar_one()
        history = conn.execute(select(case_history.c.case_id, case_history.c.sequence,
                                      case_history.c.event_type, case_history.c.event_id)).all()
        pending = conn.execute(select(func.count()).select_from(outbox)
                               .where(outbox.c.published_at.is_(None))).scalar_one()
    engine.dispose()
    return n_cases, history, pending


def test_sigkill_mid_stream_then_restart_loses_nothing_and_repeats_nothing(serve, settings, upstream, tap):
    first = serve()
    ids = [f"crash-test-{i:05d}" for i in range(STREAM)]
    for i, nid in enumerate(ids):
        assert upstream.publish("earlyhelp.notifications", "notification.school",
                                encode(notification_body(notification_id=nid)), message_id=nid).ok
        if i == STREAM // 3:
            tap.wait_for(lambda e: e["event_type"] == "case.checked", count=20, timeout=30)
            first.kill()  # part-way: some batches committed, some held unacked, some not yet delivered
    serve()
    tap.wait_for(lambda e: e["event_type"] == "case.checked", count=STREAM, timeout=120)
    deadline = time.monotonic() + 30
    while (result := stored(settings.database_url))[2] and time.monotonic() < deadline:
        time.sleep(0.2)
    n_cases, history, pending = result
    tap.settle(1.0)

    assert n_cases == STREAM, "every notification became exactly one case"
    assert pending == 0, "the outbox was drained"
    received = defaultdict(set)
    ids_per_transition = defaultdict(set)
    for _, event, _ in tap.events:
        if event["event_type"] == "case.received":
            received[event["notification_id"]].add(event["case_id"])
        if "sequence" in event:
            ids_per_transition[(event["case_id"], event["sequence"], event["event_type"])].add(event["event_id"])
    assert set(received) == set(ids) and all(len(c) == 1 for c in received.values())
    assert all(len(v) == 1 for v in ids_per_transition.values()), "a transition was published under two ids"
    published_ids = {event["event_id"] for _, event, _ in tap.events}
    assert {row.event_id for row in history} <= published_ids, "every stored transition was published"
    assert len(history) == 2 * STREAM


def test_sigterm_finishes_what_it_holds_and_exits_zero(serve, settings, upstream, tap):
    engine = serve()
    for i in range(200):
        nid = f"term-test-{i:05d}"
        assert upstream.publish("earlyhelp.notifications", "notification.school",
                                encode(notification_body(notification_id=nid)), message_id=nid).ok
    tap.wait_for(lambda e: e["event_type"] == "case.checked", count=10, timeout=30)
    assert engine.terminate() == 0
    n_cases, history, pending = stored(settings.database_url)
    assert pending == 0, "events stored before the stop were published before exit"
    # What the engine had not taken stays in the queue for the next start; nothing it took is lost.
    serve()
    tap.wait_for(lambda e: e["event_type"] == "case.checked", count=200, timeout=60)
    assert stored(settings.database_url)[0] == 200
