"""Clocks managed and policies tried first (issue 14 items 3-4), on the real broker and both databases:
extend_clock, `earlyhelp policy apply` (stored, picked up by every worker without a restart, each open clock
recomputed once with a history row, published breaches standing), and the check agreeing with the apply."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from importlib.resources import files

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from earlyhelp.cli.main import cli
from earlyhelp.consumers.recording import case_id_for
from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import case_history, cases, sla_clocks, sla_policies
from earlyhelp.workflows.sla_policy import DEFAULT_POLICY_RESOURCE
from tests.conftest import RunningEngine
from tests.factories import command_body, encode, notification_body

pytestmark = pytest.mark.integration
UTC = timezone.utc
SHIPPED = files("earlyhelp.workflows").joinpath(DEFAULT_POLICY_RESOURCE).read_text()
TRIAGE_14 = 'allowance = { amount = 14, unit = "calendar_days" }'


def run(settings, *args):
    env = {"EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url,
           "EARLYHELP_OPERATOR": "manager-amy"}
    return CliRunner().invoke(cli, list(args), env=env)


def notify(upstream, tap, notification_id: str, received_at: str, **overrides) -> str:
    body = notification_body(notification_id=notification_id, received_at=received_at, **overrides)
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
    case_id = case_id_for("school", notification_id)
    tap.wait_for(lambda e: e["event_type"] == "case.checked" and e["case_id"] == case_id)
    return case_id


def send(upstream, name: str, case_id: str, **fields) -> dict:
    body = command_body(name, case_id, **fields)
    assert upstream.publish("earlyhelp.commands", f"case.{name}", encode(body)).ok
    return body


def triage_clock(settings, case_id: str) -> dict:
    return next(c for c in json.loads(run(settings, "clocks", case_id, "--format", "json").stdout)
                if c["stage"] == "triage")


def policy_file(tmp_path, name: str, triage_days: int):
    path = tmp_path / name
    path.write_text(SHIPPED.replace(TRIAGE_14, f'allowance = {{ amount = {triage_days}, unit = "calendar_days" }}'))
    assert path.read_text() != SHIPPED
    return path


# --- extend_clock ---------------------------------------------------------------------------------------

def test_a_manager_extends_a_running_clock_the_reason_stays_in_the_history(settings, engine, tap, upstream,
                                                                            dead_letters):
    # At the anchor, Wednesday 25 November 2026 12:00 UTC; received Friday 20 November 09:14: due 4 December.
    case_id = notify(upstream, tap, "extend-1", "2026-11-20T09:14:00Z")
    send(upstream, "extend_clock", case_id, stage="triage", extra={"amount": 3, "unit": "calendar_days"},
         reason="The family asked to meet after the funeral.", actor={"id": "manager-amy", "role": "manager"},
         issued_at="2026-11-25T10:00:00Z")
    [extended] = tap.wait_for(lambda e: e["event_type"] == "sla.extended.triage")
    assert extended["data"] == {"previous_due_at": "2026-12-04T09:14:00Z", "due_at": "2026-12-07T09:14:00Z"}
    assert extended["actor"] == {"id": "manager-amy", "role": "manager"} and extended["state"] == "checked"
    assert "sla.extended.triage.unassigned" in tap.keys()
    assert "funeral" not in json.dumps(extended)
    assert triage_clock(settings, case_id)["deadline"] == "2026-12-07T09:14:00+00:00"

    db = make_engine(settings.database_url)
    try:
        with db.connect() as conn:
            row = conn.execute(select(case_history.c.data, case_history.c.from_state, case_history.c.to_state)
                               .where(case_history.c.case_id == case_id,
                                      case_history.c.event_type == "sla.extended.triage")).one()
        assert row.data["reason"] == "The family asked to meet after the funeral."
        assert row.data["extra"] == {"amount": 3, "unit": "calendar_days"} and row.from_state == row.to_state
    finally:
        db.dispose()

    # A pause and its resumption recompute the clock and keep the three days: an hour waiting, an hour later.
    send(upstream, "request_information", case_id, issued_at="2026-11-25T10:30:00Z", missing=["child_voice"])
    tap.wait_for(lambda e: e["event_type"] == "case.information_requested")
    send(upstream, "provide_information", case_id, issued_at="2026-11-25T11:30:00Z",
         fields={"child_voice": "Sam would like help with mornings."})
    tap.wait_for(lambda e: e["event_type"] == "case.information_provided")
    assert triage_clock(settings, case_id)["deadline"] == "2026-12-07T10:14:00+00:00"

    # A stage that has not started is refused cleanly: a rejection event, no dead-letter copy, nothing changed.
    send(upstream, "extend_clock", case_id, stage="allocation", issued_at="2026-11-25T11:45:00Z")
    [refused] = tap.wait_for(lambda e: e["event_type"] == "command.rejected")
    assert refused["code"] == "not_allowed_in_state" and "allocation clock has not started" in refused["reason"]
    assert dead_letters.take(1, timeout=1.0) == []

    report = json.loads(run(settings, "report", "--from", "2026-11-01", "--to", "2026-11-30", "--format",
                            "json").stdout)
    assert report["extensions"]["total"] == 1
    assert report["extensions"]["stages"][0] == {"stage": "triage", "extensions": 1, "cases": 1,
                                                 "working_days": 0, "calendar_days": 3}
    assert report["extensions"]["by_district"] == [{"district": "unassigned", "stage": "triage", "extensions": 1,
                                                    "cases": 1, "working_days": 0, "calendar_days": 3}]
    assert "Clock extensions granted by managers: 1" in run(settings, "report", "--from", "2026-11-01",
                                                               "--to", "2026-11-30").output


def test_a_breach_already_published_stands_when_the_clock_is_extended(settings, engine, tap, upstream):
    case_id = notify(upstream, tap, "extend-late", "2026-11-20T09:14:00Z", priority=True)  # due 22 November
    tap.wait_for(lambda e: e["event_type"] == "sla.breached.triage")
    send(upstream, "extend_clock", case_id, stage="triage", extra={"amount": 5, "unit": "working_days"},
         issued_at="2026-11-25T09:00:00Z")
    [extended] = tap.wait_for(lambda e: e["event_type"] == "sla.extended.triage")
    # Due Sunday 22 November 09:14; five working days after that day: Monday 23 to Friday 27.
    assert extended["data"]["due_at"] == "2026-11-28T00:00:00Z"
    tap.settle(2.5)  # two more scans
    assert len(tap.of_type("sla.breached.triage")) == 1
    db = make_engine(settings.database_url)
    try:
        with db.connect() as conn:
            clock = conn.execute(select(sla_clocks).where(sla_clocks.c.case_id == case_id)).one()
        assert clock.breached_at is not None and clock.next_check_at is None
        assert clock.extensions == [{"amount": 5, "unit": "working_days"}]
    finally:
        db.dispose()


# --- policy apply ---------------------------------------------------------------------------------------

def test_apply_puts_a_policy_in_force_for_every_worker_and_agrees_with_the_check(settings, engine, tap, upstream,
                                                                                  tmp_path):
    # Three open triage clocks: received 10 November (breached under 14 days), 20 and 23 November.
    old = notify(upstream, tap, "apply-old", "2026-11-10T09:00:00Z")
    tap.wait_for(lambda e: e["event_type"] == "sla.breached.triage" and e["case_id"] == old)
    mid = notify(upstream, tap, "apply-mid", "2026-11-20T09:00:00Z")
    new = notify(upstream, tap, "apply-new", "2026-11-23T09:00:00Z")
    send(upstream, "extend_clock", new, stage="triage", extra={"amount": 1, "unit": "calendar_days"},
         issued_at="2026-11-25T09:00:00Z")
    tap.wait_for(lambda e: e["event_type"] == "sla.extended.triage")
    second = RunningEngine(settings).start()  # a second worker, started before the apply
    try:
        stricter = policy_file(tmp_path, "stricter.toml", 4)
        checked = run(settings, "policy", "check", str(stricter), "--format", "json")
        assert checked.exit_code == 0, checked.output
        check = json.loads(checked.stdout)["stages"]["triage"]
        # Under 4 days: 10 and 20 November are overdue; 23 November + 1 day extension: due 28 November.
        assert check == {"open": 3, "overdue_now": 1, "overdue_under_new": 2, "newly_overdue": 1,
                         "no_longer_overdue": 0}

        applied = run(settings, "policy", "apply", str(stricter))
        assert applied.exit_code == 0, applied.output
        assert "version 1" in applied.output and "3 open clocks, 3 were recomputed, on 3 cases" in applied.output

        # The check's figures and a fresh computation over the stored clocks agree.
        db = make_engine(settings.database_url)
        try:
            with db.connect() as conn:
                now = datetime.now(UTC)
                stored = conn.execute(select(sla_clocks.c.case_id, sla_clocks.c.due_at, sla_clocks.c.breached_at)
                                      .where(sla_clocks.c.stage == "triage", sla_clocks.c.stopped_at.is_(None))).all()
                assert sum(1 for r in stored if r.due_at <= now) == check["overdue_under_new"]
                due = {r.case_id: r.due_at for r in stored}
                assert due[new] == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)  # the extension kept
                assert due[mid] == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
                # One history row per case, bumping its version; the policy stored with its version.
                rows = conn.execute(select(case_history.c.case_id, case_history.c.sequence, case_history.c.actor_id,
                                           case_history.c.data)
                                    .where(case_history.c.event_type == "sla.policy_applied")).all()
                assert sorted(r.case_id for r in rows) == sorted([old, mid, new])
                versions = dict(conn.execute(select(cases.c.case_id, cases.c.version)).all())
                assert all(versions[r.case_id] == r.sequence for r in rows)
                assert {r.actor_id for r in rows} == {"manager-amy"} and rows[0].data["policy_version"] == 1
                assert conn.execute(select(func.count()).select_from(sla_policies)).scalar_one() == 1
        finally:
            db.dispose()
        again = json.loads(run(settings, "policy", "check", str(stricter), "--format", "json").stdout)
        assert again["stages"]["triage"]["overdue_now"] == check["overdue_under_new"]
        assert again["stages"]["triage"]["newly_overdue"] == 0

        # The newly overdue clock is breached by the next scan; the one breached before stays breached, once.
        tap.wait_for(lambda e: e["event_type"] == "sla.breached.triage" and e["case_id"] == mid)
        tap.settle(2.0)
        assert [e["case_id"] for e in tap.of_type("sla.breached.triage")].count(old) == 1

        # Both workers pick the new policy up without a restart, and clocks started after it follow it.
        deadline = time.monotonic() + 10
        while {engine.runtime.scanner.tracker.version, second.runtime.scanner.tracker.version} != {1}:
            assert time.monotonic() < deadline, "a worker did not pick up the applied policy"
            time.sleep(0.1)
        assert second.runtime.processor.flow.sla.policy.allowance_for("triage", False).amount == 4
        later = notify(upstream, tap, "apply-later", "2026-11-25T09:00:00Z")
        assert triage_clock(settings, later)["deadline"] == "2026-11-29T09:00:00+00:00"
    finally:
        second.stop()


def test_a_bad_policy_file_is_one_line_exit_2_and_changes_nothing(settings, engine, tap, upstream, tmp_path):
    case_id = notify(upstream, tap, "apply-bad", "2026-11-20T09:14:00Z")
    before = triage_clock(settings, case_id)
    bad = tmp_path / "bad.toml"
    bad.write_text(SHIPPED.replace(TRIAGE_14, 'allowance = { amount = 0, unit = "calendar_days" }'))
    refused = run(settings, "policy", "apply", str(bad))
    assert refused.exit_code == 2
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "stages.triage.allowance.amount" in lines[0]
    missing = run(settings, "policy", "apply", str(tmp_path / "none.toml"))
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1
    assert triage_clock(settings, case_id) == before
    db = make_engine(settings.database_url)
    try:
        with db.connect() as conn:
            assert conn.execute(select(func.count()).select_from(sla_policies)).scalar_one() == 0
            assert conn.execute(select(func.count()).select_from(case_history)
                                .where(case_history.c.event_type == "sla.policy_applied")).scalar_one() == 0
    finally:
        db.dispose()


def test_erasure_replaces_the_reason_a_manager_gave_and_keeps_the_extension(settings, engine, tap, upstream):
    case_id = notify(upstream, tap, "extend-erase", "2026-11-20T09:14:00Z")
    send(upstream, "extend_clock", case_id, stage="triage", reason="Sam Taylor's mother is in hospital.",
         issued_at="2026-11-25T10:00:00Z")
    tap.wait_for(lambda e: e["event_type"] == "sla.extended.triage")
    send(upstream, "close", case_id, reason="needs_met", issued_at="2026-11-25T11:00:00Z")
    tap.wait_for(lambda e: e["event_type"] == "case.closed")
    erased = run(settings, "erase", case_id, "--reason", "right to erasure, request 17")
    assert erased.exit_code == 0, erased.output
    db = make_engine(settings.database_url)
    try:
        with db.connect() as conn:
            data = conn.execute(select(case_history.c.data).where(
                case_history.c.case_id == case_id, case_history.c.event_type == "sla.extended.triage")).scalar_one()
        assert data["reason"] == "[erased]" and data["extra"] == {"amount": 2, "unit": "working_days"}
    finally:
        db.dispose()


def test_a_clock_a_worker_wrote_under_the_previous_policy_is_caught_up_by_the_scanner(settings, engine, tap,
                                                                                       upstream, tmp_path):
    from sqlalchemy import update

    case_id = notify(upstream, tap, "apply-straggler", "2026-11-23T09:00:00Z")
    applied = run(settings, "policy", "apply", str(policy_file(tmp_path, "four.toml", 4)))
    assert applied.exit_code == 0, applied.output
    assert triage_clock(settings, case_id)["deadline"] == "2026-11-27T09:00:00+00:00"
    db = make_engine(settings.database_url)
    try:
        with db.begin() as conn:  # what a worker that had not looked yet would write: the old allowance, no version
            conn.execute(update(sla_clocks).where(sla_clocks.c.case_id == case_id).values(
                allowance_amount=14, due_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC), policy_version=None,
                next_check_at=datetime(2026, 12, 3, 21, 0, tzinfo=UTC)))
        deadline = time.monotonic() + 15
        while triage_clock(settings, case_id)["deadline"] != "2026-11-27T09:00:00+00:00":
            assert time.monotonic() < deadline, "the scanner did not catch the clock up"
            time.sleep(0.2)
        with db.connect() as conn:
            rows = conn.execute(select(case_history.c.data, case_history.c.actor_role).where(
                case_history.c.case_id == case_id, case_history.c.event_type == "sla.policy_applied")
                .order_by(case_history.c.sequence)).all()
            assert [r.actor_role for r in rows] == ["operator", "engine"] and rows[1].data["catch_up"] is True
            assert conn.execute(select(sla_clocks.c.policy_version, sla_clocks.c.allowance_amount)
                                .where(sla_clocks.c.case_id == case_id)).one() == (1, 4)
    finally:
        db.dispose()
