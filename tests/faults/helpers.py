"""What the fault tests share: streams of notifications, waiting for the engine to settle, /readyz."""
from __future__ import annotations

import time
import urllib.error
import urllib.request

from sqlalchemy import func, select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import outbox
from tests.factories import encode, notification_body
from tests.faults.ledger import Collector, Tally, tally

NOTIFICATIONS = "earlyhelp.notifications"


def notifications(prefix: str, count: int) -> list[tuple[str, str, bytes, str]]:
    ids = [f"{prefix}-{i:05d}" for i in range(count)]
    return [(NOTIFICATIONS, "notification.school", encode(notification_body(notification_id=n)), n) for n in ids]


def outbox_pending(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox)
                                .where(outbox.c.published_at.is_(None))).scalar_one()
    finally:
        engine.dispose()


def settled(collector: Collector, database_url: str, confirmed: list[str], sent: int,
            timeout: float = 90) -> Tally:
    """Wait until every confirmed notification is checked and the outbox is empty; then count."""
    wanted, deadline = set(confirmed), time.monotonic() + timeout
    while not wanted <= {e["notification_id"] for e in collector.of_type("case.checked")}:
        if time.monotonic() > deadline:
            missing = wanted - {e["notification_id"] for e in collector.of_type("case.checked")}
            raise AssertionError(f"{len(missing)} of {len(wanted)} notifications never checked, e.g. "
                                 f"{sorted(missing)[:3]}")
        if not collector.pump():
            time.sleep(0.2)
    deadline = time.monotonic() + 30
    while outbox_pending(database_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    collector.pump()
    return tally(database_url, confirmed, sent, [e for _, e in collector.events])


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
