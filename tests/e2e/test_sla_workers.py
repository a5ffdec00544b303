"""Three `earlyhelp serve` workers on one PostgreSQL raise each SLA breach exactly once."""
from __future__ import annotations

from collections import Counter
import pytest

from tests.clock import ago
from tests.factories import encode, notification_body

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.today]

CASES = 40


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_three_workers_raise_each_breach_once(serve, upstream, tap):
    workers = [serve() for _ in range(3)]
    received_at = ago(days=3)
    for i in range(CASES):
        body = notification_body(notification_id=f"sla-workers-{i:03d}", priority=True, received_at=received_at)
        assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
    tap.wait_for(lambda e: e["event_type"] == "sla.breached.triage", count=CASES, timeout=60)
    tap.settle(4.0)  # four more scans by each worker
    breaches = Counter(e["case_id"] for e in tap.of_type("sla.breached.triage"))
    assert len(breaches) == CASES and set(breaches.values()) == {1}
    for worker in workers:
        assert worker.terminate() == 0
