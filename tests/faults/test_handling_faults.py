"""A message whose handling keeps failing is dead-lettered with its reason; an unroutable copy is kept, not dropped."""
from __future__ import annotations

import time

import pika
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from earlyhelp.consumers import handlers
from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import outbox
from earlyhelp.producers.upstream_client import _pika_url
from tests.factories import encode, notification_body

pytestmark = [pytest.mark.faults, pytest.mark.integration]
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
POISON = "poison-00001"


@ON_POSTGRES
def test_a_message_that_keeps_failing_is_dead_lettered_and_never_blocks_the_ones_behind_it(
        start_engine, settings, upstream, collector, dead_letters, monkeypatch):
    real = handlers.HANDLERS["notification"]
    calls = []

    def failing_for_one(batch, parsed):
        if parsed.message.notification_id == POISON:
            calls.append(POISON)
            raise RuntimeError("a bug that only this message meets")
        return real(batch, parsed)

    monkeypatch.setitem(handlers.HANDLERS, "notification", failing_for_one)
    start_engine()
    ids = [f"behind-{i:03d}" for i in range(5)] + [POISON] + [f"behind-{i:03d}" for i in range(5, 10)]
    poison_body = encode(notification_body(notification_id=POISON))
    for nid in ids:  # sent back to back, so the poison shares a batch with good messages
        body = poison_body if nid == POISON else encode(notification_body(notification_id=nid))
        assert upstream.publish("earlyhelp.notifications", "notification.school", body, message_id=nid).ok

    good = {n for n in ids if n != POISON}
    collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] in good, count=10)
    (copy, props), = dead_letters.take(1, timeout=15)
    assert copy == poison_body and props.message_id == POISON
    assert props.headers["x-earlyhelp-error"].startswith("handling failed 3 times (RuntimeError)")
    assert "this message meets" not in props.headers["x-earlyhelp-error"], "an exception's text is not echoed"
    assert len(calls) >= 3, "retried alone a bounded number of times"
    collector.pump()
    assert not [e for _, e in collector.events if e.get("notification_id") == POISON]

    # Its id was not recorded as processed: once the bug is fixed, the same message is accepted.
    monkeypatch.setitem(handlers.HANDLERS, "notification", real)
    assert upstream.publish("earlyhelp.notifications", "notification.school", poison_body, message_id=POISON).ok
    collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == POISON)


@pytest.fixture
def outbox_marks():
    """The parameters of the relay's "not confirmed" marks on outbox rows (by any engine in this process): a
    confirmed row is deleted, so what happened to it before is seen here, not in the table."""
    marks: list[dict] = []

    def mark(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE outbox SET attempts"):
            marks.append(dict(context.compiled_parameters[0]))

    event.listen(Engine, "before_cursor_execute", mark)
    yield marks
    event.remove(Engine, "before_cursor_execute", mark)


def dead_letter_rows(database_url: str):
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(outbox.c.attempts, outbox.c.last_error, outbox.c.published_at)
                                .where(outbox.c.mandatory.is_(True))).all()
    finally:
        engine.dispose()


@ON_POSTGRES
def test_an_unroutable_dead_letter_copy_is_kept_and_arrives_once_the_queue_exists_again(
        start_engine, settings, upstream, collector, dead_letters, outbox_marks):
    start_engine()
    connection = pika.BlockingConnection(pika.URLParameters(_pika_url(settings.broker_url)))
    connection.channel().queue_delete("earlyhelp.dead-letter")
    connection.close()

    assert upstream.publish("earlyhelp.notifications", "notification.school", b"not json", message_id="lost-1").ok
    collector.wait_for(lambda e: e["event_type"] == "notification.rejected")
    # The broker returned the mandatory copy: the row stayed pending, counted as an attempt, then the relay
    # redeclared the topology (on the return) and published it again, and deleted the row once confirmed.
    (copy, props), = dead_letters.take(1)
    deadline = time.monotonic() + 20
    while rows := dead_letter_rows(settings.database_url):
        assert time.monotonic() < deadline, f"the copy's row is still pending: {rows}"
        time.sleep(0.05)
    assert outbox_marks and {mark["last_error"] for mark in outbox_marks} == {"returned"}, outbox_marks
    assert copy == b"not json" and props.message_id == "lost-1"
    assert dead_letters.take(1, timeout=1.0) == [], "delivered once"
