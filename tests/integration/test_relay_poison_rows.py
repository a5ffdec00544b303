"""One stored outbox row the AMQP library cannot encode is that row's failure: the rows beside it are
published, and the relay goes on (it used to raise on every pass and hold up every event behind it)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from earlyhelp.consumers.runtime import broker_connection
from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import outbox
from earlyhelp.producers.outbox_relay import OutboxRelay
from tests.clock import now

pytestmark = pytest.mark.integration


def test_a_row_that_cannot_be_encoded_is_skipped_and_the_others_published(settings, tap):
    engine = make_engine(settings.database_url)
    at = now() - timedelta(seconds=5)
    rows = {
        "before": {},
        "priority-kept-from-a-sender": {"priority": 5},  # once passed twice to the library: a TypeError
        "unencodable": {"expiration": 12345},  # AMQP wants a short string here
        "after": {},
    }
    with engine.begin() as conn:
        conn.execute(insert(outbox), [
            {"event_id": name, "exchange": "earlyhelp.events", "routing_key": f"poison.{name}",
             "body": b'{"event_type": "test"}', "properties": {"message_id": name, **props}, "headers": None,
             "mandatory": False, "created_at": at, "published_at": None, "attempts": 0}
            for name, props in rows.items()])
    relay = OutboxRelay(engine, lambda: broker_connection(settings.broker_url), now)
    try:
        assert relay.publish_pending() == 3
        for _ in range(4):  # the bad row alone: nothing raises, and after three tries it is left out
            assert relay.publish_pending() == 0
    finally:
        relay._reset()
    tap.settle(0.5)
    assert sorted(k for k in tap.keys() if k.startswith("poison.")) == [
        "poison.after", "poison.before", "poison.priority-kept-from-a-sender"]
    with engine.connect() as conn:
        bad = conn.execute(select(outbox).where(outbox.c.event_id == "unencodable")).one()
    engine.dispose()
    assert bad.published_at is None and bad.attempts == 3 and bad.last_error == "unpublishable"
