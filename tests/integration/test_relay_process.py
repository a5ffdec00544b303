"""On PostgreSQL the outbox relay runs in a process of its own (producers/relay_process.py): it publishes
what each batch stored, reports to the engine's metrics and readiness, is started again if it dies, and
has published everything and gone when the engine stops. The e2e tests run `serve` this way too, and
tests/e2e/test_relay_orphan.py shows it ends when `serve` is killed."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import outbox
from earlyhelp.producers.relay_process import RelayProcess
from tests.conftest import RunningEngine
from tests.factories import notification_body
from tests.integration.test_case_flow import send_notification

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


def published_total() -> float:
    return REGISTRY.get_sample_value("earlyhelp_outbox_published_total") or 0.0


def parent_of(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[1])


def pending_rows(settings) -> int:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))).scalar_one()
    engine.dispose()
    return n


def wait_until(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def test_events_are_published_by_a_child_process_and_counted_in_the_engines_metrics(settings, tap, upstream):
    before = published_total()
    running = RunningEngine(settings).start()
    relay = running.runtime.relay
    try:
        assert isinstance(relay, RelayProcess), "auto: PostgreSQL and a real broker take the relay process"
        # Consuming began (the engine is ready) only once the child was ready to publish.
        assert relay.pid is not None and relay._reports.started.value == 1
        assert relay.pid != os.getpid() and parent_of(relay.pid) == os.getpid()
        bodies = [send_notification(upstream, notification_body(notification_id=f"relay-{i}")) for i in range(3)]
        checked = tap.wait_for(lambda e: e["event_type"] == "case.checked", count=3)
        assert {e["caused_by"] for e in checked} == {b["notification_id"] for b in bodies}
        # received + checked per notification, forwarded from the child's shared counter
        wait_until(lambda: published_total() - before >= 6, what="the metric counts the child's publishes")
        child = relay.pid
    finally:
        running.stop()
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()
    assert pending_rows(settings) == 0


def test_a_relay_process_that_dies_is_started_again_and_publishes_what_came_meanwhile(settings, tap, upstream):
    restarts = REGISTRY.get_sample_value("earlyhelp_relay_restarts_total") or 0.0
    running = RunningEngine(settings).start()
    relay = running.runtime.relay
    try:
        wait_until(lambda: relay.pid is not None, what="the relay process started")
        send_notification(upstream, notification_body(notification_id="relay-first"))
        tap.wait_for(lambda e: e["event_type"] == "case.checked")
        first = relay.pid
        os.kill(first, signal.SIGKILL)
        # Sent while no relay runs, or while the new one starts: stored, then published by the new one.
        late = send_notification(upstream, notification_body(notification_id="relay-late"))
        tap.wait_for(lambda e: e["event_type"] == "case.checked" and e["caused_by"] == late["notification_id"],
                     timeout=30)
        assert relay.restarts == 1 and relay.pid != first
        assert REGISTRY.get_sample_value("earlyhelp_relay_restarts_total") == restarts + 1
        assert running.runtime.ready()[0], "the engine stays ready while its relay is started again"
    finally:
        running.stop()
    assert pending_rows(settings) == 0


def test_the_database_going_away_and_back_reaches_readyz_from_the_child(settings):
    """The child's reads of the outbox are what notice, while no message comes, that the database went."""
    running = RunningEngine(settings).start()
    relay = running.runtime.relay
    try:
        wait_until(lambda: relay.pid is not None, what="the relay process started")
        running.runtime.status.database_state(False)  # as the batch processor says after a failed batch
        # The child reads the outbox every half second and reports each read; the engine forwards it.
        wait_until(lambda: running.runtime.database_up, timeout=5, what="the child's report reached /readyz")
    finally:
        running.stop()
