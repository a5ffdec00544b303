"""A full input queue nacks a confirming publisher, and a broker alarm blocks it: both reported, neither hangs."""
from __future__ import annotations

import json
import uuid

import pika
import pytest
from click.testing import CliRunner

from earlyhelp.cli.main import cli
from earlyhelp.producers import upstream_client
from earlyhelp.producers.upstream_client import UpstreamClient, _pika_url
from tests.faults import services
from tests.factories import notification_body

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SMALL = {"x-max-length": 1, "x-overflow": "reject-publish"}


@pytest.fixture
def small_queue(clean_broker):
    """A queue of one message with reject-publish: a second publish to it is nacked."""
    made = []

    def make(exchange: str, binding: str, exchange_type: str = "topic") -> str:
        connection = pika.BlockingConnection(pika.URLParameters(_pika_url(clean_broker)))
        channel = connection.channel()
        name = f"faults.small.{uuid.uuid4().hex[:8]}"
        channel.exchange_declare(exchange, exchange_type, durable=True)
        channel.queue_declare(name, durable=True, arguments=SMALL)
        channel.queue_bind(name, exchange, routing_key=binding)
        connection.close()
        made.append(name)
        return name

    yield make
    connection = pika.BlockingConnection(pika.URLParameters(_pika_url(clean_broker)))
    channel = connection.channel()
    for name in made:
        channel.queue_delete(name)
    channel.exchange_delete("faults.small")
    connection.close()


def test_the_upstream_client_reports_a_full_queue_as_nacked(small_queue, clean_broker):
    small_queue("faults.small", "#")
    with UpstreamClient(clean_broker) as client:
        assert client.publish("faults.small", "any", b"{}").outcome == "confirmed"
        refused = client.publish("faults.small", "any", b"{}")
        assert refused.outcome == "nacked" and not refused.ok
        assert "full" in refused.explanation and "try again later" in refused.explanation
        assert client.publish("faults.small", "any", b"{}").outcome == "nacked", "the channel stays usable"


def submit(broker_url: str, lines: list[dict]):
    runner = CliRunner()
    text = "\n".join(json.dumps(body) for body in lines) + "\n"
    return runner.invoke(cli, ["submit", "-"], input=text, env={"EARLYHELP_BROKER_URL": broker_url},
                         catch_exceptions=False)


def test_submit_reports_a_nack_and_exits_1(small_queue, clean_broker):
    # reject-publish on any queue the message reaches nacks the publisher: a small queue beside the engine's.
    small_queue("earlyhelp.notifications", "notification.#")
    first, second = (notification_body(notification_id=f"nack-{i}") for i in range(2))
    result = submit(clean_broker, [first, second])
    assert result.exit_code == 1, result.output
    assert "line 1: nack-0: confirmed" in result.output
    assert "line 2: nack-1: nacked: the broker refused it (an input queue is full): try again later" in result.output
    assert "1 sent, 1 not sent" in result.output


def test_submit_during_a_resource_alarm_reports_blocked_instead_of_hanging(clean_broker, monkeypatch):
    monkeypatch.setattr(upstream_client, "BLOCKED_TIMEOUT_S", 2.0)
    bodies = [notification_body(notification_id=f"blocked-{i}") for i in range(3)]
    with services.broker_alarm("memory"):
        result = submit(clean_broker, bodies)
    assert result.exit_code == 1, result.output
    assert "line 1: blocked-0: blocked: the broker is short of memory or disk" in result.output
    assert "line 2: blocked-1: not sent: the broker blocks publishers" in result.output
    assert "0 sent, 3 not sent" in result.output
    # Once the alarm clears, the same input goes through.
    again = submit(clean_broker, bodies)
    assert again.exit_code == 0 and "3 sent, 0 not sent" in again.output, again.output
