"""`earlyhelp queue-limits`: the queues' length and byte limits as policies, never as new queue arguments."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from kombu import Connection

from earlyhelp.cli.main import cli
from earlyhelp.cli.queue_limits import POLICIES
from earlyhelp.consumers.topology import declare_topology
from tests.conftest import free_port, rabbitmqctl

pytestmark = pytest.mark.integration
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def run(settings, *args, env=None):
    environment = {"EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url,
                   "EARLYHELP_MANAGEMENT_URL": "", **(env or {})}
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


@ON_SQLITE
def test_without_apply_it_prints_the_policies_and_sets_nothing(settings, vhost):
    result = run(settings, "queue-limits")
    assert result.exit_code == 0, result.output
    assert result.output.count("rabbitmqctl set_policy -p " + vhost) == 2
    assert "max-length-bytes" in result.output and "drop-head" in result.output
    assert "earlyhelp-input-limits" not in rabbitmqctl("list_policies", "-p", vhost)


@ON_SQLITE
def test_apply_sets_policies_the_queues_take_and_the_topology_still_declares(settings, vhost):
    try:
        result = run(settings, "queue-limits", "--apply")
        assert result.exit_code == 0, result.output
        policies = rabbitmqctl("list_policies", "-p", vhost)
        for policy in POLICIES:
            assert policy.name in policies
        applied = dict(line.split("\t")[:2] for line in
                       rabbitmqctl("list_queues", "-p", vhost, "name", "policy").splitlines()[1:])
        assert applied["earlyhelp.dead-letter"] == "earlyhelp-dead-letter-limits"
        assert applied["earlyhelp.engine.notifications"] == applied["earlyhelp.engine.commands"] \
            == "earlyhelp-input-limits"
        # The queues keep the contract's arguments: declaring them again is not refused (406).
        with Connection(settings.broker_url) as conn:
            declare_topology(conn.channel())
    finally:
        for policy in POLICIES:
            rabbitmqctl("clear_policy", "-p", vhost, policy.name)


@ON_SQLITE
def test_apply_through_the_management_api_puts_each_policy(settings, vhost):
    received: list[tuple[str, dict, str]] = []

    class FakeManagement(BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body, self.headers.get("Authorization", "")))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeManagement)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://admin:s3cret@127.0.0.1:{server.server_port}"
        result = run(settings, "queue-limits", "--apply", env={"EARLYHELP_MANAGEMENT_URL": url})
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert [path for path, _, _ in received] == [f"/api/policies/{vhost}/{p.name}" for p in POLICIES]
    assert all(body["apply-to"] == "queues" and body["priority"] == 10 for _, body, _ in received)
    assert received[1][1]["definition"]["overflow"] == "drop-head"
    assert all(auth.startswith("Basic ") for _, _, auth in received)


def test_the_shipped_compose_sets_the_same_policies_and_a_message_size_near_the_contracts():
    from pathlib import Path

    compose = (Path(__file__).parents[2] / "docker-compose.yml").read_text()
    for policy in POLICIES:
        assert f"name={policy.name}" in compose
        assert f"definition='{json.dumps(policy.definition, separators=(',', ':'))}'" in compose
        assert f"pattern='{policy.pattern.replace('$', '$$')}'" in compose
    assert '"-rabbit max_message_size 2097152"' in compose
