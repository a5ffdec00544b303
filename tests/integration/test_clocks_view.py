"""`earlyhelp clocks CASE_ID`: a case's clocks as the engine keeps them, in text and in the contract's JSON."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from earlyhelp.cli.main import cli
from earlyhelp.consumers.recording import case_id_for
from tests.factories import command_body, encode, notification_body

pytestmark = pytest.mark.integration


def clocks(settings, *args):
    env = {"EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url}
    return CliRunner().invoke(cli, ["clocks", *args], env=env)


def test_clocks_lists_each_stage_with_its_deadline_pause_and_state(settings, engine, tap, upstream):
    # At the tests' anchor, Wednesday 25 November 2026 12:00 UTC.
    body = notification_body(notification_id="clocks-1")  # received Friday 20 November, 09:14
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
    case_id = case_id_for("school", "clocks-1")
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    triage = command_body("triage", case_id, issued_at="2026-11-23T10:00:00Z")  # Monday
    assert upstream.publish("earlyhelp.commands", "case.triage", encode(triage)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.triaged")

    listed = json.loads(clocks(settings, case_id, "--format", "json").stdout)
    assert [list(c) for c in listed] == [["stage", "started", "paused", "deadline", "warning", "state"]] * 2
    triage_clock, allocation = listed
    assert triage_clock == {"stage": "triage", "started": "2026-11-20T09:14:00+00:00", "paused": None,
                            "deadline": "2026-12-04T09:14:00+00:00", "warning": "2026-11-30T21:14:00+00:00",
                            "state": "met"}
    # Four working days after Monday: Tuesday to Friday, due at the end of Friday 27 November.
    assert allocation["deadline"] == "2026-11-28T00:00:00+00:00" and allocation["state"] == "running"

    ask = command_body("request_information", case_id, issued_at="2026-11-24T15:00:00Z", missing=["child_voice"])
    assert upstream.publish("earlyhelp.commands", "case.request_information", encode(ask)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.information_requested")
    allocation = json.loads(clocks(settings, case_id, "--format", "json").stdout)[1]
    assert allocation["state"] == "paused" and allocation["paused"].startswith("2026-11-24T15:00")
    assert allocation["deadline"] is None

    text = clocks(settings, case_id).output
    assert "allocation" in text and "paused" in text and "2026-11-24 15:00 UTC" in text
    unknown = clocks(settings, "no-such-case")
    assert unknown.exit_code == 2 and "no such case" in unknown.output


def test_policy_check_compares_a_new_policy_over_the_open_clocks_and_changes_nothing(
        settings, engine, tap, upstream, tmp_path):
    from earlyhelp.workflows.sla_policy import DEFAULT_POLICY_RESOURCE
    from importlib.resources import files

    shipped = files("earlyhelp.workflows").joinpath(DEFAULT_POLICY_RESOURCE).read_text()
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(shipped.replace('allowance = { amount = 4, unit = "working_days" }',
                                        'allowance = { amount = 1, unit = "working_days" }'))
    assert stricter.read_text() != shipped
    for n, district in enumerate(["Dover", "Maidstone"]):
        body = notification_body(notification_id=f"policy-{n}")
        assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
        case_id = case_id_for("school", f"policy-{n}")
        tap.wait_for(lambda e, c=case_id: e["event_type"] == "case.checked" and e["case_id"] == c)
        # Dover triaged on Monday (one working day ran out on Tuesday); Maidstone on Wednesday morning.
        issued = "2026-11-23T10:00:00Z" if district == "Dover" else "2026-11-25T09:00:00Z"
        triage = command_body("triage", case_id, district=district, issued_at=issued)
        assert upstream.publish("earlyhelp.commands", "case.triage", encode(triage)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.triaged", count=2)
    before = clocks(settings, case_id_for("school", "policy-0"), "--format", "json").output

    env = {"EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url}
    checked = CliRunner().invoke(cli, ["policy", "check", str(stricter), "--format", "json"], env=env)
    assert checked.exit_code == 0, checked.output
    result = json.loads(checked.stdout)
    assert result["stages"]["allocation"] == {"open": 2, "overdue_now": 0, "overdue_under_new": 1,
                                              "newly_overdue": 1, "no_longer_overdue": 0}
    assert result["by_district"]["Dover"]["allocation"]["newly_overdue"] == 1
    assert result["by_district"]["Maidstone"]["allocation"]["overdue_under_new"] == 0
    assert clocks(settings, case_id_for("school", "policy-0"), "--format", "json").output == before

    text = CliRunner().invoke(cli, ["policy", "check", str(stricter)], env=env).output
    assert "allocation" in text and "Nothing was changed." in text
    broken = tmp_path / "broken.toml"
    broken.write_text(shipped.replace("[stages.assessment]", "[stages.assesment]"))
    refused = CliRunner().invoke(cli, ["policy", "check", str(broken)], env=env)
    assert refused.exit_code == 2 and "assesment" in refused.output
