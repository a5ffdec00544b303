"""Published outbox rows are deleted after an hour: event bodies can carry a child's details."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import outbox
from earlyhelp.producers.outbox_relay import OutboxRelay

pytestmark = pytest.mark.integration


def test_published_rows_older_than_an_hour_are_pruned_and_pending_ones_never(database_url):
    now = datetime.now(timezone.utc)
    engine = make_engine(database_url)
    rows = [("old", now - timedelta(hours=2)), ("recent", now - timedelta(minutes=5)), ("pending", None)]
    with engine.begin() as conn:
        conn.execute(insert(outbox), [{"event_id": name, "exchange": "earlyhelp.events", "routing_key": "x",
                                       "body": b"{}", "mandatory": False, "created_at": now - timedelta(hours=3),
                                       "published_at": at, "attempts": 0} for name, at in rows])
    relay = OutboxRelay(engine, connect=None, clock=lambda: now)
    assert relay.prune_published() == 1
    with engine.connect() as conn:
        left = sorted(conn.execute(select(outbox.c.event_id)).scalars())
        assert left == ["pending", "recent"]
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 2
    engine.dispose()
