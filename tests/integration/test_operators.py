"""The operators' commands on the real broker and databases: queues, dead-letters, cases, case, metrics."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pika
import pytest
from click.testing import CliRunner

from earlyhelp.cli.main import cli
from earlyhelp.consumers.recording import case_id_for
from earlyhelp.producers.upstream_client import _pika_url
from tests.conftest import free_port
from tests.factories import command_body, encode, notification_body

pytestmark = pytest.mark.integration


def run(settings, *args, env=None, input=None):
    environment = {"EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url,
                   "EARLYHELP_MANAGEMENT_URL": "", **(env or {})}
    return CliRunner().invoke(cli, list(args), env=environment, input=input, catch_exceptions=False)


def dead_letter_count(broker_url: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(_pika_url(broker_url)))
    try:
        return conn.channel().queue_declare("earlyhelp.dead-letter", passive=True).method.message_count
    finally:
        conn.close()


def wait_for_dead_letters(broker_url: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while dead_letter_count(broker_url) < count:
        assert time.monotonic() < deadline, f"fewer than {count} copies reached earlyhelp.dead-letter"
        time.sleep(0.05)


# -- queues -----------------------------------------------------------------------------------------
def test_queues_check_fails_without_an_engine_and_passes_with_one(settings, upstream):
    result = run(settings, "queues", "--check")
    assert result.exit_code == 1
    assert "earlyhelp.engine.notifications: no consumer" in result.output
    assert "unacked and rates unknown" in result.output

    from tests.conftest import RunningEngine

    engine = RunningEngine(settings).start()
    try:
        result = run(settings, "queues", "--check", "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert {q["name"]: q["consumers"] for q in data["queues"]} == {
            "earlyhelp.engine.notifications": 1, "earlyhelp.engine.commands": 1, "earlyhelp.dead-letter": 0}
        assert all(q["unacked"] is None for q in data["queues"])

        # A refused message makes the check fail, naming the dead-letter queue.
        assert upstream.publish("earlyhelp.notifications", "notification.school", b"{not json").ok
        wait_for_dead_letters(settings.broker_url, 1)
        result = run(settings, "queues", "--check")
        assert result.exit_code == 1
        assert "earlyhelp.dead-letter: 1 refused message(s) waiting" in result.output
    finally:
        engine.stop()


def test_queues_reads_unacked_and_rates_from_a_management_api_when_given(settings):
    class FakeManagement(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            name = self.path.rsplit("/", 1)[1]
            body = json.dumps({"name": name, "messages_ready": 3, "messages_unacknowledged": 7, "consumers": 2,
                               "message_stats": {"publish_details": {"rate": 1.5},
                                                 "deliver_get_details": {"rate": 2.5}}}).encode()
            self.seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    FakeManagement.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeManagement)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://guest:guest@127.0.0.1:{server.server_address[1]}"
        result = run(settings, "queues", "--json", env={"EARLYHELP_MANAGEMENT_URL": url})
        data = json.loads(result.stdout)
        assert data["note"] is None
        assert all((q["unacked"], q["publish_rate"], q["deliver_rate"]) == (7, 1.5, 2.5) for q in data["queues"])
        vhost = settings.broker_url.rsplit("/", 1)[1]
        assert FakeManagement.seen[0][0] == f"/api/queues/{vhost}/earlyhelp.engine.notifications"
        assert FakeManagement.seen[0][1] == "Basic Z3Vlc3Q6Z3Vlc3Q="
    finally:
        server.shutdown()
    # Unreachable: the AMQP figures still come, with a note saying why there are no rates.
    result = run(settings, "queues", env={"EARLYHELP_MANAGEMENT_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.exit_code == 0 and "management API not reachable" in result.output


# -- dead letters ---------------------------------------------------------------------------------------
def test_dead_letters_list_show_replay_exactly_once(settings, engine, tap, upstream):
    # A triage for a case that does not exist yet is refused (unknown case_id) ...
    body = notification_body(notification_id="oakwood-2026-replay-1")
    case_id = case_id_for("school", "oakwood-2026-replay-1")
    triage = command_body("triage", case_id, district="Dover")
    assert upstream.publish("earlyhelp.commands", "case.triage", encode(triage), message_id="staff-1").ok
    tap.wait_for(lambda e: e["event_type"] == "command.rejected")
    wait_for_dead_letters(settings.broker_url, 1)
    # ... and a bad notification carrying a child's name is refused too.
    bad = notification_body(notification_id="bad-2", kind="complaint")
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(bad), message_id="bad-2").ok
    wait_for_dead_letters(settings.broker_url, 2)

    listed = json.loads(run(settings, "dead-letters", "list", "--json").stdout)
    assert [c["message_id"] for c in listed] == ["staff-1", "bad-2"]
    assert listed[0]["original_exchange"] == "earlyhelp.commands" and listed[0]["original_routing_key"] == "case.triage"
    assert listed[0]["reason"] and listed[0]["refused_at"] and listed[0]["by"] == "engine"
    # Reading again gives the same ids in the same order, and loses nothing.
    assert json.loads(run(settings, "dead-letters", "list", "--json").stdout) == listed
    assert dead_letter_count(settings.broker_url) == 2
    text = run(settings, "dead-letters", "list").output
    assert listed[0]["id"] in text and "case.triage" in text and "2 copies" in text

    shown = run(settings, "dead-letters", "show", listed[1]["id"]).output
    assert "x-earlyhelp-error" in shown and "Sam" not in shown and "hidden" in shown
    assert "Sam" in run(settings, "dead-letters", "show", listed[1]["id"], "--body", "--reason", "fault 12").output

    # Once the case exists, the replayed triage goes through, once, and only that copy leaves the queue.
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.checked" and e["case_id"] == case_id)
    result = run(settings, "dead-letters", "replay", listed[0]["id"][:8])
    assert result.exit_code == 0, result.output
    assert f"{listed[0]['id']}: replayed to earlyhelp.commands case.triage" in result.output
    triaged = tap.wait_for(lambda e: e["event_type"] == "case.triaged" and e["case_id"] == case_id)
    assert triaged[0]["caused_by"] == triage["command_id"] and triaged[0]["district"] == "Dover"
    remaining = json.loads(run(settings, "dead-letters", "list", "--json").stdout)
    assert [c["id"] for c in remaining] == [listed[1]["id"]]
    tap.settle(1.0)
    assert len(tap.of_type("case.triaged")) == 1
    # The replayed copy carried none of the diagnostic headers: it was not refused again.
    assert len(tap.of_type("command.rejected")) == 1

    # A second replay of the same id finds nothing; purge removes exactly the named copy.
    assert run(settings, "dead-letters", "replay", listed[0]["id"]).exit_code == 1
    result = run(settings, "dead-letters", "purge", listed[1]["id"], "--yes")
    assert f"{listed[1]['id']}: removed" in result.output and dead_letter_count(settings.broker_url) == 0


def test_a_copy_that_cannot_be_routed_stays_in_the_dead_letter_queue(settings, upstream):
    # Published as the engine's broker user (guest here), so its headers are believed; replay may go only
    # to an input exchange, where no queue takes this key.
    headers = {"x-earlyhelp-error": "test", "x-earlyhelp-original-exchange": "earlyhelp.notifications",
               "x-earlyhelp-original-routing-key": "nobody.listens.here", "x-earlyhelp-refused-at": "2026-11-01T00:00:00"}
    assert upstream.publish("", "earlyhelp.dead-letter", b"{}", message_id="m-1", headers=headers).ok
    [copy] = json.loads(run(settings, "dead-letters", "list", "--json").stdout)
    result = run(settings, "dead-letters", "replay", "--all")
    assert result.exit_code == 1 and "kept: unroutable" in result.output
    assert json.loads(run(settings, "dead-letters", "list", "--json").stdout)[0]["id"] == copy["id"]
    result = run(settings, "dead-letters", "purge", "--all", input="y\n")
    assert "1 removed" in result.output and dead_letter_count(settings.broker_url) == 0


def test_a_broker_dead_letter_is_listed_from_x_death_and_replayed_to_its_exchange(settings, upstream):
    """No engine runs: a notification rejected past the delivery limit is dead-lettered by the broker itself."""
    body = encode(notification_body(notification_id="limit-1"))
    assert upstream.publish("earlyhelp.notifications", "notification.school", body, message_id="limit-1").ok
    conn = pika.BlockingConnection(pika.URLParameters(_pika_url(settings.broker_url)))
    channel = conn.channel()
    deadline = time.monotonic() + 20
    while dead_letter_count(settings.broker_url) == 0:
        assert time.monotonic() < deadline, "the broker never dead-lettered the message"
        method, _props, _body = channel.basic_get("earlyhelp.engine.notifications")
        if method:
            channel.basic_reject(method.delivery_tag, requeue=True)
        time.sleep(0.02)
    conn.close()
    [copy] = json.loads(run(settings, "dead-letters", "list", "--json").stdout)
    assert copy["by"] == "broker" and "delivery_limit" in copy["reason"]
    assert (copy["original_exchange"], copy["original_routing_key"]) == ("earlyhelp.notifications", "notification.school")
    assert "replayed" in run(settings, "dead-letters", "replay", copy["id"]).output
    conn = pika.BlockingConnection(pika.URLParameters(_pika_url(settings.broker_url)))
    method, props, again = conn.channel().basic_get("earlyhelp.engine.notifications", auto_ack=True)
    conn.close()
    assert again == body and props.message_id == "limit-1"
    assert not any(k.startswith(("x-death", "x-first-death", "x-last-death")) for k in (props.headers or {}))


# -- cases and case -----------------------------------------------------------------------------------------
def test_cases_lists_without_personal_data_and_case_shows_the_timeline(settings, engine, tap, upstream):
    ids = []
    for n, received in enumerate(["2026-09-01T09:00:00Z", "2026-11-20T09:00:00Z"]):
        body = notification_body(notification_id=f"oakwood-list-{n}", received_at=received)
        assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
        ids.append(case_id_for("school", f"oakwood-list-{n}"))
    tap.wait_for(lambda e: e["event_type"] == "case.checked", count=2)
    triage = command_body("triage", ids[1], district="Dover", issued_at="2026-11-21T10:00:00Z",
                          actor={"id": "triage-07", "role": "triage_worker"})
    assert upstream.publish("earlyhelp.commands", "case.triage", encode(triage)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.triaged")

    listed = json.loads(run(settings, "cases", "--json").stdout)
    assert [c["case_id"] for c in listed] == ids
    # The September case's triage clock (14 days) ran out long ago; the November one is triaged and its
    # allocation clock (4 working days from 21 Nov) is due on 27 Nov.
    assert [c["overdue"] for c in listed] == [True, False]
    assert [c["case_id"] for c in json.loads(run(settings, "cases", "--overdue", "--json").stdout)] == [ids[0]]
    assert [c["case_id"] for c in json.loads(run(settings, "cases", "--district", "dover", "--json").stdout)] == [ids[1]]
    assert [c["case_id"] for c in json.loads(run(settings, "cases", "--state", "checked", "--json").stdout)] == [ids[0]]
    assert json.loads(run(settings, "cases", "--source", "health", "--json").stdout) == []
    text = run(settings, "cases").output
    assert "OVERDUE" in text and "Sam" not in text and "Taylor" not in text and "2 cases" in text
    assert run(settings, "cases", "--due-within", "soon").exit_code == 2

    shown = run(settings, "case", ids[1]).output
    assert "case.received" in shown and "case.checked" in shown and "case.triaged" in shown
    assert "triage-07 (triage_worker)" in shown and "2026-11-21 10:00 UTC" in shown
    assert "allocation" in shown and "Sam" not in shown and "--show-personal" in shown
    detail = json.loads(run(settings, "case", ids[1], "--json").stdout)
    assert [h["to_state"] for h in detail["history"]] == ["received", "checked", "triaged"]
    assert all(h["recorded_at"] for h in detail["history"])
    assert "Sam" in run(settings, "case", ids[1], "--show-personal", "--reason", "SAR-1").output
    assert run(settings, "case", "no-such-case").exit_code == 1


# -- metrics --------------------------------------------------------------------------------------------------
def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_scraped_from_a_running_engine_change_as_messages_flow(settings, engine, tap, upstream):
    from earlyhelp.metrics import refresh_case_gauges
    from earlyhelp.status_server import start_status_server

    port = free_port()
    server = start_status_server(port, engine.runtime.ready, host="127.0.0.1")
    stop = threading.Event()
    refresher = threading.Thread(target=refresh_case_gauges, args=(engine.runtime.db, stop, 0.1), daemon=True)
    refresher.start()
    try:
        time.sleep(0.3)
        before = scrape(port)
        assert before["earlyhelp_broker_connected"] == 1.0
        assert before['earlyhelp_cases{state="checked"}'] == 0.0
        for n in range(3):
            body = notification_body(notification_id=f"metrics-{n}")
            assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
        assert upstream.publish("earlyhelp.notifications", "notification.school", b"[]").ok
        tap.wait_for(lambda e: e["event_type"] == "case.checked", count=3)
        tap.wait_for(lambda e: e["event_type"] == "notification.rejected")
        deadline = time.monotonic() + 10
        while scrape(port).get('earlyhelp_cases{state="checked"}') != 3.0:
            assert time.monotonic() < deadline, "the cases gauge never showed the three checked cases"
            time.sleep(0.1)
        after = scrape(port)

        def delta(prefix):
            return sum(v for k, v in after.items() if k.startswith(prefix)) - \
                sum(v for k, v in before.items() if k.startswith(prefix))

        assert delta('earlyhelp_messages_total{input="notification"') == 4
        assert delta('earlyhelp_refusals_total{input="notification"') == 1
        assert delta("earlyhelp_outbox_published_total") >= 3 + 3 + 1 + 1  # received, checked, rejected, copy
        assert after["earlyhelp_case_gauges_refreshed_timestamp_seconds"] > 0
    finally:
        stop.set()
        refresher.join(5)
        server.shutdown()
