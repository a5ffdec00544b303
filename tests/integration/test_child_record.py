"""A child's record as the law expects (issue 13), on the real broker and both databases: the disclosure
log, subject access through keyed hashes, erasure everywhere (a dump of the whole database holds none of
the child's data afterwards, bytea/BLOB decoded; the report's figures unchanged), retention, the access log
and bad input (one line, exit 2, nothing changed)."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess

import pika
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from earlyhelp.cli.main import cli
from earlyhelp.consumers.recording import case_id_for
from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import access_log, case_identifiers, cases, disclosures
from earlyhelp.producers.upstream_client import _pika_url
from earlyhelp.schemas.identifiers import upn_check_letter
from tests.factories import command_body, encode, notification_body

pytestmark = pytest.mark.integration

KEY = "5e" * 32
NHS = "9434765919"
UPN = upn_check_letter("801200300001") + "801200300001"
GIVEN, FAMILY = "Zebedee", "Quattlebaum"
SECRETS = [GIVEN, FAMILY, NHS, UPN, "ME19 9ZZ", "Prudence Notifier", "prudence@oakwood.example",
           "Unmistakable concern 4471", "Zebedee would like 5512", "Already tried 8830", "Hoped outcome 9921"]


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    """The engine in this process and the tools read the same key (no key file in the home folder)."""
    monkeypatch.setenv("EARLYHELP_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("EARLYHELP_OPERATOR", "dpo-test")


def run(settings, *args, env=None):
    environment = {"EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url,
                   "EARLYHELP_MANAGEMENT_URL": "", "EARLYHELP_PSEUDONYM_KEY": KEY, "EARLYHELP_OPERATOR": "dpo-test",
                   **(env or {})}
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


def child_notification(notification_id: str, **child) -> dict:
    return notification_body(
        notification_id=notification_id, reason="Unmistakable concern 4471",
        support_already_offered="Already tried 8830", intended_outcome="Hoped outcome 9921",
        child_voice="Zebedee would like 5512",
        referrer={"contact_name": "Prudence Notifier", "contact_email": "prudence@oakwood.example"},
        child={"given_name": GIVEN, "family_name": FAMILY, "date_of_birth": "2015-05-02", "postcode": "ME19 9ZZ",
               "nhs_number": NHS, "upn": UPN, **child})


def send(upstream, exchange: str, key: str, body: dict | bytes, message_id: str):
    sent = upstream.publish(exchange, key, body if isinstance(body, bytes) else encode(body), message_id=message_id)
    assert sent.ok, sent.explanation


def command(upstream, name: str, case_id: str, **fields) -> dict:
    body = command_body(name, case_id, **fields)
    send(upstream, "earlyhelp.commands", f"case.{name}", body, body["command_id"])
    return body


def open_case(tap, upstream, body: dict) -> str:
    send(upstream, "earlyhelp.notifications", "notification.school", body, body["notification_id"])
    return tap.wait_for(lambda e: e["event_type"] == "case.received"
                        and e["notification_id"] == body["notification_id"])[0]["case_id"]


_EVENTS = {"triage": "case.triaged", "allocate": "case.allocated", "assess": "case.assessed",
           "step_down": "case.stepped_down", "close": "case.closed"}


def walk_to_closed(tap, upstream, case_id: str) -> None:
    tap.wait_for(lambda e: e["event_type"] == "case.checked" and e.get("case_id") == case_id)
    for name, fields in (("triage", {"district": "Maidstone"}), ("allocate", {}), ("assess", {}),
                         ("step_down", {}), ("close", {})):
        command(upstream, name, case_id, **fields)
        tap.wait_for(lambda e, t=_EVENTS[name]: e["event_type"] == t and e.get("case_id") == case_id)
    tap.wait_for(lambda e: e["event_type"] == "school.closed" and e.get("case_id") == case_id)


def dead_letter_bodies(broker_url: str) -> list[bytes]:
    conn = pika.BlockingConnection(pika.URLParameters(_pika_url(broker_url)))
    try:
        channel, bodies = conn.channel(), []
        while True:
            method, _props, body = channel.basic_get("earlyhelp.dead-letter", auto_ack=False)
            if method is None:
                return bodies
            bodies.append(body)
    finally:
        conn.close()  # every copy goes back


def wait_for_dead_letters(broker_url: str, count: int) -> None:
    import time

    deadline = time.monotonic() + 15
    while len(dead_letter_bodies(broker_url)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} dead-letter copies"
        time.sleep(0.1)


def whole_database_dump(database_url: str) -> str:
    """Every row of every table as text, binary columns decoded (SQLite's iterdump; pg_dump)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.split(":///", 1)[1])
        try:
            dump = "\n".join(conn.iterdump())
        finally:
            conn.close()
        blobs = re.findall(r"X'([0-9a-fA-F]*)'", dump)
    else:
        url = database_url.replace("postgresql+psycopg://", "postgresql://")
        dump = subprocess.run(["pg_dump", "--data-only", "--no-owner", url], capture_output=True, text=True,
                              check=True).stdout
        blobs = re.findall(r"\\\\x([0-9a-fA-F]+)", dump)
    decoded = [bytes.fromhex(b).decode("utf-8", "replace") for b in blobs if len(b) % 2 == 0]
    return dump + "\n" + "\n".join(decoded)


def figures(report_json: str):
    """The report's figures: everything but the moments it was made at (the clock ticks between the two)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("as_of", "generated_at")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(report_json))


def count(settings, table, *where) -> int:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
    finally:
        engine.dispose()


def test_disclosures_subject_access_and_erasure_everywhere(settings, engine, tap, upstream):
    body = child_notification("oakwood-dpo-1")
    case_id = open_case(tap, upstream, body)
    walk_to_closed(tap, upstream, case_id)
    other = open_case(tap, upstream, notification_body(notification_id="oakwood-dpo-other"))  # another child

    # The disclosure log: what was sent where, on what basis; field paths, never values.
    result = run(settings, "disclosures", case_id, "--json")
    assert result.exit_code == 0, result.output + result.stderr
    logged = json.loads(result.stdout)
    assert [(d["routing_key"], d["basis"]) for d in logged] == [
        ("case.allocated.maidstone", "public_task"), ("school.118923.allocated", "consent"),
        ("school.118923.stepped_down", "consent"), ("school.118923.closed", "consent")]
    assert "data.child.nhs_number" in logged[0]["field_paths"] and "data.notifier.contact_email" in logged[0]["field_paths"]
    assert logged[1]["field_paths"] == ["data.child.family_name", "data.child.given_name"]
    assert {d["event_id"] for d in logged} == {e["event_id"] for _, e, _ in tap.events
                                               if e.get("case_id") == case_id and (
                                                   e["event_type"] == "case.allocated" or e["event_type"].startswith("school."))}
    assert not any(secret in result.output for secret in SECRETS)
    assert "4 disclosures" in run(settings, "disclosures", case_id).output

    # Subject access by each identifier finds the case, and only it; each request is in the access log.
    for args in (["--nhs-number", "943 476 5919"], ["--upn", UPN.lower()], ["--name", f" zebedee  {FAMILY.upper()}",
                                                                             "--dob", "2015-05-02"]):
        result = run(settings, "subject-access", *args, "--reason", "SAR-2026-77")
        assert result.exit_code == 0, result.output + result.stderr
        document = json.loads(result.stdout)
        assert document["request"]["by"] == "dpo-test" and document["request"]["reason"] == "SAR-2026-77"
        assert [c["case_id"] for c in document["cases"]] == [case_id]
        found = document["cases"][0]
        assert found["notification"]["child"]["nhs_number"] == NHS and found["linked_notifications"] == []
        assert [h["event_type"] for h in found["history"]][-1] == "case.closed"
        assert len(found["disclosures"]) == 4 and {c["stage"] for c in found["clocks"]} >= {"triage"}
        assert set(found["clocks"][0]) >= {"stage", "started", "paused", "deadline", "warning", "state"}
    page = run(settings, "subject-access", "--nhs-number", NHS, "--reason", "SAR-2026-77", "--format", "html").output
    assert "<!DOCTYPE html>" in page and GIVEN in page and "school.118923.allocated" in page and "http" not in page
    log = json.loads(run(settings, "access-log", "--case", case_id, "--json").stdout)
    assert len(log) == 4 and {r["command"] for r in log} == {"subject-access"}
    assert all(r["operator"] == "dpo-test" and r["reason"] == "SAR-2026-77" for r in log)
    assert not any(secret in json.dumps(log) for secret in SECRETS)

    # Copies naming the case wait in the dead-letter queue (and in the outbox): a command with a bad field,
    # and a second notification of the same id with other content; an unrelated bad message too.
    bad = command_body("close", case_id, reason="not-a-reason")
    send(upstream, "earlyhelp.commands", "case.close", bad, bad["command_id"])
    send(upstream, "earlyhelp.notifications", "notification.school", child_notification("oakwood-dpo-1", postcode="ME1 1AA"),
         "again")
    send(upstream, "earlyhelp.notifications", "notification.school", b"{not json", "unrelated")
    wait_for_dead_letters(settings.broker_url, 3)

    before = run(settings, "report", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")
    assert before.exit_code == 0, before.output
    result = run(settings, "erase", case_id, "--reason", "erasure request ER-2026-3")
    assert result.exit_code == 0, result.output + result.stderr
    assert f"case {case_id}: erased" in result.output and "dead letter queue copies 2" in result.output
    after = run(settings, "report", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")
    assert figures(after.stdout) == figures(before.stdout)

    # Nothing of the child anywhere: the whole database, binary columns decoded, and the dead-letter queue.
    dump = whole_database_dump(settings.database_url)
    assert case_id in dump  # the statistics and history stay
    assert [secret for secret in SECRETS if secret in dump] == []
    remaining = dead_letter_bodies(settings.broker_url)
    assert remaining == [b"{not json"]
    assert count(settings, case_identifiers, case_identifiers.c.case_id == case_id) == 0
    assert count(settings, disclosures, disclosures.c.case_id == case_id) == 0
    assert count(settings, case_identifiers, case_identifiers.c.case_id == other) == 1  # name + date only
    assert json.loads(run(settings, "subject-access", "--nhs-number", NHS, "--reason", "SAR-2026-78").stdout)["cases"] == []
    history = json.loads(run(settings, "case", case_id, "--json").stdout)["history"]
    assert history[-1]["event_type"] == "case.erased" and history[-1]["data"]["reason"] == "erasure request ER-2026-3"
    assert tap.of_type("case.erased") == []  # history only: the contract names no case.erased event
    assert "its 4 disclosure rows went with its details" in run(settings, "disclosures", case_id).stdout
    again = run(settings, "erase", case_id, "--reason", "again")
    assert again.exit_code == 0 and "already erased" in again.output
    assert [h["event_type"] for h in json.loads(run(settings, "case", case_id, "--json").stdout)["history"]].count(
        "case.erased") == 1


def test_a_command_for_an_erased_case_is_refused_as_for_any_closed_case(settings, engine, tap, upstream):
    case_id = open_case(tap, upstream, child_notification("oakwood-dpo-6"))
    command(upstream, "close", case_id)
    tap.wait_for(lambda e: e["event_type"] == "case.closed" and e.get("case_id") == case_id)
    assert run(settings, "erase", case_id, "--reason", "ER-6").exit_code == 0
    late = command(upstream, "record_consent", case_id, share_with_school=True)
    refused = tap.wait_for(lambda e: e["event_type"] == "command.rejected" and e.get("command_id") == late["command_id"],
                           timeout=8)
    assert refused[0]["code"] == "not_allowed_in_state"


def test_a_provided_identifier_makes_the_case_findable_by_it(settings, engine, tap, upstream):
    case_id = open_case(tap, upstream, child_notification("oakwood-dpo-2", nhs_number=None))
    tap.wait_for(lambda e: e["event_type"] == "case.checked" and e["case_id"] == case_id)
    assert json.loads(run(settings, "subject-access", "--nhs-number", NHS, "--reason", "r").stdout)["cases"] == []
    command(upstream, "request_information", case_id, missing=["child.nhs_number"])
    tap.wait_for(lambda e: e["event_type"] == "case.information_requested" and e["case_id"] == case_id)
    command(upstream, "provide_information", case_id, fields={"child.nhs_number": NHS})
    tap.wait_for(lambda e: e["event_type"] == "case.information_provided" and e["case_id"] == case_id)
    found = json.loads(run(settings, "subject-access", "--nhs-number", NHS, "--reason", "r").stdout)["cases"]
    assert [c["case_id"] for c in found] == [case_id]
    assert count(settings, case_identifiers, case_identifiers.c.case_id == case_id) == 3
    # Closed, and referred again with only the UPN (and a new surname): a second case of the same child, found
    # by the NHS number through the UPN the two cases share; a name and date of birth alone are not followed.
    command(upstream, "close", case_id)
    tap.wait_for(lambda e: e["event_type"] == "case.closed" and e["case_id"] == case_id)
    later = open_case(tap, upstream, child_notification("oakwood-dpo-2b", nhs_number=None, family_name="Other-Name"))
    namesake = open_case(tap, upstream, child_notification("oakwood-dpo-2c", nhs_number=None, upn=None))
    found = json.loads(run(settings, "subject-access", "--nhs-number", NHS, "--reason", "r").stdout)["cases"]
    assert sorted(c["case_id"] for c in found) == sorted([case_id, later])
    by_name = json.loads(run(settings, "subject-access", "--name", f"{GIVEN} {FAMILY}", "--dob", "2015-05-02",
                             "--reason", "r").stdout)["cases"]
    assert sorted(c["case_id"] for c in by_name) == sorted([case_id, later, namesake])


def test_retention_lists_then_erases_closed_cases_past_the_policy(settings, engine, tap, upstream, tmp_path):
    grown = open_case(tap, upstream, child_notification("oakwood-dpo-3", date_of_birth="2000-01-01"))
    young = open_case(tap, upstream, child_notification("oakwood-dpo-4", nhs_number=None, upn=None))
    still_open = open_case(tap, upstream, child_notification("oakwood-dpo-5", date_of_birth="2000-01-02",
                                                             nhs_number=None, upn=None, given_name="Other"))
    for case_id in (grown, young):
        command(upstream, "close", case_id)
        tap.wait_for(lambda e, c=case_id: e["event_type"] == "case.closed" and e["case_id"] == c)
    listed = run(settings, "retention")
    assert listed.exit_code == 0, listed.output + listed.stderr
    assert grown in listed.output and young not in listed.output and still_open not in listed.output
    assert "1 closed case past the policy: add --apply" in listed.output
    short = tmp_path / "retention.toml"
    short.write_text("[retention]\nuntil_age = 5\nyears_after_received_without_birth_date = 1\n")
    both = json.loads(run(settings, "retention", "--json", env={"EARLYHELP_RETENTION": str(short)}).stdout)
    assert sorted(d["case_id"] for d in both["due"]) == sorted([grown, young])
    still = run(settings, "erase", still_open, "--reason", "ER-5")
    assert still.exit_code == 2 and "is open" in still.stderr and "close it first" in still.stderr
    assert GIVEN in run(settings, "case", still_open, "--show-personal", "--reason", "check").stdout  # unchanged
    applied = run(settings, "retention", "--apply")
    assert applied.exit_code == 0, applied.output + applied.stderr
    assert f"{grown}" in applied.output and "erased" in applied.output
    assert "0 closed cases past the policy" in run(settings, "retention").output
    history = json.loads(run(settings, "case", grown, "--json").stdout)["history"]
    assert history[-1]["event_type"] == "case.erased" and "retention policy" in history[-1]["data"]["reason"]


def test_bad_input_gets_one_line_exit_2_and_changes_nothing(settings, tmp_path):
    bad_policy = tmp_path / "retention.toml"
    bad_policy.write_text("[retention]\nuntil_age = 'twenty'\nyears_after_received_without_birth_date = 25\n")
    unknown = case_id_for("school", "never-sent")
    for args, env, words in [
        (["erase", unknown, "--reason", "x"], None, f"no case {unknown}"),
        (["erase", unknown], None, "erase needs --reason"),
        (["disclosures", unknown], None, f"no case {unknown}"),
        (["subject-access", "--nhs-number", "9434765918", "--reason", "x"], None,
         "--nhs-number: NHS number check digit does not match"),
        (["subject-access", "--upn", "A12", "--reason", "x"], None, "--upn: UPN must be 13 characters"),
        (["subject-access", "--name", "Sam Taylor", "--dob", "02/05/2015", "--reason", "x"], None, "--dob: not a date"),
        (["subject-access", "--nhs-number", NHS], None, "give --reason"),
        (["subject-access", "--reason", "x"], None, "give one of --nhs-number, --upn, or --name with --dob"),
        (["retention"], {"EARLYHELP_RETENTION": str(bad_policy)}, f"{bad_policy}: retention.until_age:"),
        (["case", unknown, "--show-personal"], None, "give --reason"),
        (["access-log", "--since", "yesterday"], None, "--since: not a date"),
    ]:
        result = run(settings, *args, env=env)
        assert result.exit_code == 2, (args, result.output, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, result.stderr)
        assert "9434765918" not in result.stderr
    assert count(settings, access_log) == 0 and count(settings, cases) == 0


def test_the_access_log_refuses_to_be_edited(settings):
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO access_log (at, operator, command, shown, reason) "
                              "VALUES (CURRENT_TIMESTAMP, 'a', 'case --show-personal', 'x', 'y')"))
        for statement in ("UPDATE access_log SET reason = 'z'", "DELETE FROM access_log"):
            with pytest.raises(Exception, match="append-only"):
                with engine.begin() as conn:
                    conn.execute(text(statement))
    finally:
        engine.dispose()
    assert count(settings, access_log) == 1


def test_every_view_of_personal_data_needs_a_reason_and_is_logged(settings, engine, tap, upstream):
    case_id = open_case(tap, upstream, child_notification("oakwood-dpo-7"))
    walk_to_closed(tap, upstream, case_id)
    bad = command_body("close", case_id, reason="not-a-reason")
    send(upstream, "earlyhelp.commands", "case.close", bad, bad["command_id"])
    wait_for_dead_letters(settings.broker_url, 1)
    copy_id = json.loads(run(settings, "dead-letters", "list", "--json").stdout)[0]["id"]

    for args in (["case", case_id, "--show-personal"], ["dead-letters", "show", copy_id, "--body"],
                 ["watch", "--show-personal", "--timeout", "0.2"]):
        refused = run(settings, *args)
        assert refused.exit_code == 2 and "give --reason" in refused.stderr, (args, refused.output)
    assert count(settings, access_log) == 0
    assert GIVEN in run(settings, "case", case_id, "--show-personal", "--reason", "complaint C-9").stdout
    assert "not-a-reason" in run(settings, "dead-letters", "show", copy_id, "--body", "--reason", "fix sender").stdout
    assert run(settings, "watch", "case.allocated.#", "--show-personal", "--reason", "on call", "--timeout",
               "0.2").exit_code == 0
    rows = json.loads(run(settings, "access-log", "--json").stdout)
    assert [(r["command"], r["case_id"], r["reason"], r["operator"]) for r in rows] == [
        ("case --show-personal", case_id, "complaint C-9", "dpo-test"),
        ("dead-letters show --body", case_id, "fix sender", "dpo-test"),
        ("watch --show-personal", None, "on call", "dpo-test")]
    assert "case.allocated.#" in rows[2]["shown"] and copy_id in rows[1]["shown"]
    assert not any(secret in json.dumps(rows) for secret in SECRETS)
    assert len(json.loads(run(settings, "access-log", "--case", case_id, "--json").stdout)) == 2
    assert json.loads(run(settings, "access-log", "--since", "2026-11-26", "--json").stdout) == []
    printed = run(settings, "access-log").stdout
    assert "3 entries" in printed and "complaint C-9" in printed


def test_migration_0005_hashes_the_identifiers_of_cases_already_stored(tmp_path):
    from earlyhelp.persistence.database import migrate
    from earlyhelp.records.pseudonyms import child_digests

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    migrate(url, "0004")
    engine = make_engine(url)
    body = child_notification("oakwood-dpo-old")
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO cases (case_id, notification_id, state, version, kind, source, priority, "
                              "share_with_school, received_at, opened_at, updated_at) VALUES ('old-1', 'n-1', "
                              "'received', 1, 'request_for_support', 'school', 0, 1, '2026-11-20 09:14:00', "
                              "'2026-11-20 09:14:00', '2026-11-20 09:14:00')"))
            conn.execute(text("INSERT INTO case_details (case_id, notification) VALUES ('old-1', :n)"),
                         {"n": json.dumps(body)})
        migrate(url)
        with engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT kind, digest FROM case_identifiers WHERE case_id = 'old-1'")).all())
    finally:
        engine.dispose()
    assert stored == child_digests(bytes.fromhex(KEY), body)


def test_a_batch_writes_its_hashes_and_disclosures_in_bulk(database_url):
    """Ten cases in one transaction: the identifier hashes and disclosures go in with the batch's other rows (one
    statement on PostgreSQL, executemany on SQLite), and a change of details replaces a case's hashes."""
    from datetime import datetime, timezone

    from earlyhelp.persistence.case_store import CaseStore
    from earlyhelp.records.pseudonyms import child_digests
    from earlyhelp.workflows.case_flow import Case

    at = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            store = CaseStore(conn)
            for i in range(10):
                case = Case(case_id=f"bulk-{i}", notification_id=f"n-{i}", state="received", version=1,
                            kind="request_for_support", source="school", received_at=at)
                store.add_case(case, child_notification(f"n-{i}"), at, {})
                store.add_disclosure({"event_id": f"e-{i}", "case_id": f"bulk-{i}", "event_type": "case.allocated",
                                      "exchange": "earlyhelp.events", "routing_key": "case.allocated.maidstone",
                                      "field_paths": ["data.child.given_name"], "basis": "public_task",
                                      "disclosed_at": at})
            store.flush(at)
        with engine.begin() as conn:
            store = CaseStore(conn)
            store.change_details("bulk-0", child_notification("n-0", upn=None, nhs_number="4010232137"))
            store.flush(at)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM case_identifiers")).scalar_one() == 29
            assert conn.execute(text("SELECT count(*) FROM disclosures")).scalar_one() == 10
            stored = dict(conn.execute(text("SELECT kind, digest FROM case_identifiers WHERE case_id = 'bulk-0'")).all())
            paths = conn.execute(text("SELECT field_paths FROM disclosures WHERE event_id = 'e-3'")).scalar_one()
    finally:
        engine.dispose()
    assert stored == child_digests(bytes.fromhex(KEY), child_notification("n-0", upn=None, nhs_number="4010232137"))
    assert (json.loads(paths) if isinstance(paths, str) else paths) == ["data.child.given_name"]
