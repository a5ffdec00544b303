"""The client commands as a user runs them: `submit`, `command` and `watch`."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.clock import child_env
from tests.e2e.conftest import earlyhelp_command
from tests.factories import notification_body

pytestmark = [pytest.mark.integration]


def earlyhelp(env, *args, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*earlyhelp_command(), *args], input=stdin, capture_output=True, text=True,
                          env=child_env(env), timeout=timeout)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_submit_validates_publishes_and_reports_each_notification(serve, serve_env, tap):
    serve()
    lines = [json.dumps(notification_body(notification_id=f"submit-{i}")) for i in range(3)]
    lines.insert(1, json.dumps(notification_body(notification_id="submit-bad", received_at="yesterday")))
    lines.insert(2, "not json at all")
    done = earlyhelp(serve_env, "submit", "-", stdin="\n".join(lines) + "\n")
    assert done.returncode == 1, done.stdout + done.stderr  # two were not sent
    out = done.stdout
    assert out.count(": confirmed: the broker has it") == 3
    assert "line 2: refused, not sent" in out and "received_at" in out
    assert "line 3: refused, not sent: not a JSON object" in out
    assert "3 sent, 2 not sent" in out
    tap.wait_for(lambda e: e["event_type"] == "case.checked", count=3)
    tap.settle(0.3)
    assert tap.of_type("notification.rejected") == [], "refused locally, never sent"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_command_sends_a_staff_command_and_watch_prints_the_events(serve, serve_env, tap, upstream):
    serve()
    single = json.dumps(notification_body())
    assert earlyhelp(serve_env, "submit", "-", stdin=single).returncode == 0
    case_id = tap.wait_for(lambda e: e["event_type"] == "case.checked")[0]["case_id"]
    watcher = subprocess.Popen([*earlyhelp_command(), "watch", "case.triaged.#", "case.allocated.#",
                                "--count", "2", "--timeout", "30"], env=child_env(serve_env), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    import time
    time.sleep(1.5)  # let watch bind its queue before the events are published
    triage = earlyhelp(serve_env, "command", "triage", case_id, "service=early_help_unit",
                       "district=tonbridge and malling", "priority=true", "--actor", "amy:triage")
    assert triage.returncode == 0, triage.stdout + triage.stderr
    assert "confirmed" in triage.stdout
    allocate = earlyhelp(serve_env, "command", "allocate", case_id, "team=West 1", "worker_id=w-7")
    assert allocate.returncode == 0, allocate.stdout + allocate.stderr
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    keys = [line.split(" ", 1)[0] for line in out.splitlines()]
    assert keys == ["case.triaged.tonbridge-and-malling", "case.allocated.tonbridge-and-malling"]
    allocated = json.loads(out.splitlines()[1].split(" ", 1)[1])
    assert allocated["data"]["child"] == "[hidden: --show-personal]" and "Sam" not in out
    triaged = tap.wait_for(lambda e: e["event_type"] == "case.triaged")[0]
    assert triaged["actor"] == {"id": "amy", "role": "triage"} and triaged["priority"] is True


def test_command_refuses_bad_fields_before_sending(serve_env):
    done = earlyhelp(serve_env, "command", "triage", "some-case", "service=astrology", "district=Dover")
    assert done.returncode == 1 and "service" in done.stderr
