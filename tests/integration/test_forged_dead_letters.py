"""Dead letters cannot be forged (issue 11, item 4), on the real broker.

A sender can put any header on a message, and the broker keeps a message's headers when it dead-letters
it. Before this change a notification published with `expiration: 1` and
`x-earlyhelp-original-exchange: earlyhelp.events` expired into earlyhelp.dead-letter, `dead-letters list`
showed it as the engine's own and `replay --all` published its body to earlyhelp.events. Now the engine's
copies carry its AMQP user_id (RabbitMQ checks it), other copies are shown as the broker's or a sender's
with their headers not believed, and replay sends only to earlyhelp.notifications or earlyhelp.commands.
"""
from __future__ import annotations

import json
from contextlib import contextmanager

import pika
import pytest
from click.testing import CliRunner
from pika.exceptions import ChannelClosedByBroker

from earlyhelp.cli.main import cli
from earlyhelp.producers.upstream_client import _pika_url
from tests.conftest import AMQP, RUN_ID, EventTap, rabbitmqctl
from tests.factories import encode, notification_body
from tests.integration.test_operators import dead_letter_count, wait_for_dead_letters

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

FORGED = {"x-earlyhelp-error": "refused by the engine (forged)",
          "x-earlyhelp-original-exchange": "earlyhelp.events",
          "x-earlyhelp-original-routing-key": "school.118923.allocated",
          "x-earlyhelp-refused-at": "2026-11-01T00:00:00+00:00"}


def run(settings, *args, env=None, url=None):
    environment = {"EARLYHELP_BROKER_URL": url or settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url,
                   "EARLYHELP_MANAGEMENT_URL": "", "EARLYHELP_ENGINE_USER": "", **(env or {})}
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


def listed(settings, **kwargs) -> list[dict]:
    result = run(settings, "dead-letters", "list", "--json", **kwargs)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@contextmanager
def broker_user(vhost: str, name: str, configure: str, write: str, read: str, topic_write: tuple[str, str] | None = None):
    """A RabbitMQ user of this test run with exactly these permissions in the test vhost; its URL."""
    user = f"{name}-{RUN_ID}"
    rabbitmqctl("add_user", user, "pw-" + user)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, configure, write, read)
        if topic_write:
            rabbitmqctl("set_topic_permissions", "-p", vhost, user, topic_write[0], topic_write[1], "^$")
        host = AMQP.split("@", 1)[1]
        yield user, f"amqp://{user}:pw-{user}@{host}/{vhost}"
    finally:
        rabbitmqctl("delete_user", user)


@contextmanager
def channel_for(url: str):
    connection = pika.BlockingConnection(pika.URLParameters(_pika_url(url)))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        if connection.is_open:
            connection.close()


def test_an_expired_forgery_is_the_brokers_copy_and_never_reaches_the_events_exchange(settings, vhost):
    """No engine runs, so the forged notifications wait in earlyhelp.engine.notifications and expire there."""
    schools = EventTap(settings.broker_url, bindings=("school.#", "#"))
    try:
        with broker_user(vhost, "forger", "^$", r"^earlyhelp\.notifications$", "^$",
                         ("earlyhelp.notifications", r"^notification\.school$")) as (user, url):
            with channel_for(url) as channel:
                body = encode(notification_body(notification_id="forged-1"))
                channel.basic_publish("earlyhelp.notifications", "notification.school", body, pika.BasicProperties(
                    content_type="application/json", delivery_mode=2, message_id="forged-1", user_id=user,
                    expiration="1", headers=dict(FORGED)), mandatory=True)
                # The same, with a forged x-death entry too: the broker only counts up a matching entry and
                # keeps its fields, so the exchange and routing key it names are the forger's.
                death = {"count": 1, "reason": "expired", "queue": "earlyhelp.engine.notifications",
                         "exchange": "earlyhelp.events", "routing-keys": ["school.118923.allocated"]}
                channel.basic_publish("earlyhelp.notifications", "notification.school", body, pika.BasicProperties(
                    content_type="application/json", delivery_mode=2, message_id="forged-2", user_id=user,
                    expiration="1", headers={**FORGED, "x-death": [death]}), mandatory=True)
                # The broker checks user_id against the login: a sender cannot claim to be the engine.
                with pytest.raises(ChannelClosedByBroker) as refused:
                    channel.basic_publish("earlyhelp.notifications", "notification.school", body,
                                          pika.BasicProperties(user_id="guest", headers=dict(FORGED)))
                assert refused.value.reply_code == 406 and "user_id" in refused.value.reply_text
        wait_for_dead_letters(settings.broker_url, 2)

        first, second = listed(settings)
        print("dead-letters list --json:", json.dumps([first, second], indent=1))
        assert [c["message_id"] for c in (first, second)] == ["forged-1", "forged-2"]
        for copy in (first, second):
            assert copy["by"] == "broker" and copy["user_id"] == f"forger-{RUN_ID}"
            assert copy["reason"] == "dead-lettered by the broker: expired in earlyhelp.engine.notifications"
            assert copy["original_exchange"] == "earlyhelp.notifications"  # the queue's exchange, not the header's
            assert FORGED["x-earlyhelp-error"] not in json.dumps(copy) and "earlyhelp.events" not in json.dumps(copy)
        assert first["original_routing_key"] == "notification.school"
        assert second["original_routing_key"] is None  # school.118923.allocated is no key that queue takes
        text = run(settings, "dead-letters", "list").output
        print(text)
        assert "earlyhelp.events" not in text and FORGED["x-earlyhelp-error"] not in text and "(broker)" in text

        result = run(settings, "dead-letters", "replay", "--all")
        print(result.output)
        assert result.exit_code == 1
        assert f"{first['id']}: replayed to earlyhelp.notifications notification.school" in result.output
        assert (f"{second['id']}: not replayed: its original exchange and routing key cannot be established"
                in result.output)
        # Nothing reached earlyhelp.events: the one replayed went back to the engine's input, headers stripped.
        schools.settle(1.0)
        assert schools.events == []
        with channel_for(settings.broker_url) as channel:
            method, props, again = channel.basic_get("earlyhelp.engine.notifications", auto_ack=True)
        assert again == body and props.message_id == "forged-1"
        assert props.user_id == "guest"  # the replaying operator, not the forger: the engine judges the operator
        assert not any(str(k).startswith(("x-earlyhelp-", "x-death")) for k in (props.headers or {}))
        assert [c["id"] for c in listed(settings)] == [second["id"]]
    finally:
        schools.close()


def test_a_copy_a_sender_put_in_the_queue_itself_is_shown_as_the_senders_and_kept(settings):
    with channel_for(settings.broker_url) as channel:  # no user_id: any sender, even one logged in as the engine
        channel.basic_publish("", "earlyhelp.dead-letter", b"{}", pika.BasicProperties(
            message_id="planted", delivery_mode=2, headers=dict(FORGED)), mandatory=True)
    [copy] = listed(settings)
    assert copy["by"] == "sender" and copy["original_exchange"] is None and copy["original_routing_key"] is None
    assert copy["refused_at"] == "" and "headers are not believed" in copy["reason"]
    text = run(settings, "dead-letters", "list").output
    assert "sender-made: its headers are not believed" in text and "earlyhelp.events" not in text
    shown = run(settings, "dead-letters", "show", copy["id"]).output
    assert "headers (set by the sender, none believed)" in shown
    result = run(settings, "dead-letters", "replay", copy["id"])
    print(result.output)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (f"{copy['id']}: not replayed: a copy made by a sender, not by the "
                                             "engine or the broker, so where it came from cannot be trusted "
                                             "(purge it once read)")
    assert [c["id"] for c in listed(settings)] == [copy["id"]]


def test_the_engines_own_copies_and_events_carry_its_user_id_and_only_they_are_believed(settings, engine, tap, upstream):
    assert upstream.publish("earlyhelp.notifications", "notification.school", b"{not json", message_id="bad-1").ok
    rejected = tap.wait_for(lambda e: e["event_type"] == "notification.rejected")
    wait_for_dead_letters(settings.broker_url, 1)
    assert [p.user_id for _, e, p in tap.events if e is rejected[0]] == ["guest"]
    [copy] = listed(settings)
    assert copy["by"] == "engine" and copy["user_id"] == "guest" and copy["message_id"] == "bad-1"
    assert (copy["original_exchange"], copy["original_routing_key"]) == ("earlyhelp.notifications", "notification.school")
    assert copy["reason"] != FORGED["x-earlyhelp-error"] and copy["refused_at"]

    # An operator who logs in as someone else says who the engine is; any other engine user believes nothing.
    assert listed(settings, env={"EARLYHELP_ENGINE_USER": "guest"})[0]["by"] == "engine"
    assert listed(settings, env={"EARLYHELP_ENGINE_USER": "earlyhelp-engine"})[0]["by"] == "sender"

    # Even a copy with the engine's user_id is replayed only to the two input exchanges.
    with channel_for(settings.broker_url) as channel:
        channel.basic_publish("", "earlyhelp.dead-letter", b"{}", pika.BasicProperties(
            message_id="names-events", user_id="guest", delivery_mode=2, headers=dict(FORGED)), mandatory=True)
    wait_for_dead_letters(settings.broker_url, 2)
    events_copy = [c for c in listed(settings) if c["message_id"] == "names-events"][0]
    result = run(settings, "dead-letters", "replay", events_copy["id"])
    print(result.output)
    assert result.exit_code == 1 and (f"{events_copy['id']}: not replayed: replay sends only to "
                                      "earlyhelp.notifications or earlyhelp.commands, and this copy names "
                                      "earlyhelp.events") in result.output
    assert dead_letter_count(settings.broker_url) == 2


def test_an_operator_without_permission_gets_one_clear_line_and_nothing_is_removed(settings, vhost):
    with channel_for(settings.broker_url) as channel:  # an engine-made copy (user_id guest) for a command
        channel.basic_publish("", "earlyhelp.dead-letter", b"{}", pika.BasicProperties(
            message_id="cmd-1", user_id="guest", delivery_mode=2, headers={
                "x-earlyhelp-error": "unknown case_id", "x-earlyhelp-original-exchange": "earlyhelp.commands",
                "x-earlyhelp-original-routing-key": "case.triage"}), mandatory=True)
    engine = {"EARLYHELP_ENGINE_USER": "guest"}

    with broker_user(vhost, "no-read", "^$", "^$", "^$") as (_user, url):
        result = run(settings, "dead-letters", "list", url=url, env=engine)
        print(result.output)
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        assert "RabbitMQ refused this broker user: ACCESS_REFUSED - access to queue 'earlyhelp.dead-letter'" in result.output
        assert "Traceback" not in result.output and "pw-" not in result.output

    # Can read the dead letters but may not write to earlyhelp.commands: replay says so and keeps the copy.
    with broker_user(vhost, "read-only", "^$", "^$", r"^earlyhelp\.dead-letter$") as (_user, url):
        [copy] = listed(settings, url=url, env=engine)
        assert copy["by"] == "engine"
        result = run(settings, "dead-letters", "replay", copy["id"], url=url, env=engine)
        print(result.output)
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        assert "ACCESS_REFUSED - access to exchange 'earlyhelp.commands'" in result.output
    assert dead_letter_count(settings.broker_url) == 1

    # A wrong password, with a failover list whose every password must stay hidden.
    host = AMQP.split("@", 1)[1]
    url = f"amqp://guest:wrong-one@{host}/{vhost};amqp://guest:wrong-two@{host}/{vhost}"
    result = run(settings, "dead-letters", "list", url=url)
    print(result.output)
    assert result.exit_code == 1 and "login refused (wrong user name or password)" in result.output
    assert "wrong-one" not in result.output and "wrong-two" not in result.output
