"""The broker closes every connection, stops and starts, or blocks publishers: nothing lost, nothing twice."""
from __future__ import annotations

import time

import pytest

from tests.faults import services
from tests.faults.helpers import notifications, outbox_pending, settled
from tests.faults.stream import Sender
from earlyhelp.producers.upstream_client import UpstreamClient

pytestmark = [pytest.mark.faults, pytest.mark.integration]
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@ON_POSTGRES
def test_every_connection_closed_mid_stream_the_engine_reconnects(start_engine, settings, collector, vhost):
    engine = start_engine()
    stream = notifications("closed", 300)
    sender = Sender(settings.broker_url, stream, pause_s=0.002).start()
    collector.wait_for(lambda e: e["event_type"] == "case.checked", count=30)
    services.close_all_connections(vhost)  # the engine's consumer, its relay, the sender: all cut
    sender.join()
    result = settled(collector, settings.database_url, sender.confirmed, len(stream))
    assert result.ok and result.cases == 300, result.lines()
    assert engine.runtime.ready()[0], "the engine consumes again"


@ON_POSTGRES
def test_broker_stopped_and_started_mid_stream_the_engine_rides_it_out(start_engine, settings, collector):
    engine = start_engine()
    stream = notifications("stopped", 300)
    sender = Sender(settings.broker_url, stream, pause_s=0.002).start()
    collector.wait_for(lambda e: e["event_type"] == "case.checked", count=30)
    with services.broker_stopped():
        deadline = time.monotonic() + 10
        while engine.runtime.ready()[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not engine.runtime.ready()[0], "not ready while the broker is away"
        time.sleep(2)  # several reconnect attempts fail while the broker is away
        assert engine.thread.is_alive(), "the engine stays up while the broker is away"
    sender.join()
    result = settled(collector, settings.database_url, sender.confirmed, len(stream))
    assert result.ok and result.cases == 300, result.lines()
    deadline = time.monotonic() + 15
    while not engine.runtime.ready()[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.runtime.ready()[0]


@ON_POSTGRES
@pytest.mark.parametrize("alarm", ["memory", "disk"])
def test_a_resource_alarm_blocks_the_relay_which_waits_then_publishes_what_it_holds(
        alarm, start_engine, settings, collector):
    stream = notifications(f"alarm-{alarm}", 200)
    with UpstreamClient(settings.broker_url) as client:  # queued before the alarm: publishers block during it
        for exchange, key, body, ident in stream:
            assert client.publish(exchange, key, body, message_id=ident).ok
    with services.broker_alarm(alarm):
        engine = start_engine()  # consuming and acking are not blocked; publishing is
        deadline = time.monotonic() + 30
        while engine.runtime.handled_total < len(stream) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.runtime.handled_total == len(stream), "the engine handles and commits during the alarm"
        time.sleep(2)
        assert outbox_pending(settings.database_url) > 0, "the relay holds the events while blocked"
        collector.pump()
        assert not collector.events, "nothing is published while the broker blocks publishers"
        assert engine.thread.is_alive()
    result = settled(collector, settings.database_url, [n for *_, n in stream], len(stream))
    assert result.ok and result.cases == 200, result.lines()
    assert result.republished == 0, "a blocked batch is published once the alarm clears, not twice"
