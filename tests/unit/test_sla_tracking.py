"""SlaTracker: which clocks each change starts, pauses, resumes and stops, and what a scan raises."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from earlyhelp.workflows.case_flow import Change
from earlyhelp.workflows.sla_tracking import SlaTracker

UTC = timezone.utc
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, GMT
tracker = SlaTracker()


def change(event_type: str, at: datetime) -> Change:
    return Change(event_type, 1, "x", None, at, "cause")


def test_receipt_starts_the_triage_clock_with_the_allowance_for_its_priority():
    clocks = {}
    tracker.follow(clocks, False, change("case.received", T0))
    assert clocks["triage"].due_at == T0 + timedelta(days=14)
    assert clocks["triage"].warning_at == T0 + timedelta(days=10.5)
    priority = {}
    tracker.follow(priority, True, change("case.received", T0))
    assert priority["triage"].due_at == T0 + timedelta(days=2)


def test_triage_stops_its_clock_and_starts_allocation_by_working_days():
    clocks = {}
    tracker.follow(clocks, False, change("case.received", T0))
    tracker.follow(clocks, False, change("case.triaged", T0 + timedelta(days=1)))  # Tuesday
    assert clocks["triage"].stopped_at == T0 + timedelta(days=1)
    assert clocks["triage"].next_check_at is None
    # Day 1 is Wednesday; the 4th working day is Monday 9 November, ending at midnight.
    assert clocks["allocation"].due_at == datetime(2026, 11, 10, 0, 0, tzinfo=UTC)


def test_a_priority_set_at_triage_moves_the_deadline_the_stage_is_judged_by():
    clocks = {}
    tracker.follow(clocks, False, change("case.received", T0))
    tracker.follow(clocks, True, change("case.triaged", T0 + timedelta(days=3)))
    assert clocks["triage"].due_at == T0 + timedelta(days=2) and clocks["triage"].priority is True


def test_waiting_for_information_pauses_and_moves_the_deadline_by_the_pause():
    clocks = {}
    tracker.follow(clocks, True, change("case.received", T0))
    tracker.follow(clocks, True, change("case.information_requested", T0 + timedelta(hours=1)))
    assert clocks["triage"].due_at is None and clocks["triage"].next_check_at is None
    tracker.follow(clocks, True, change("case.information_provided", T0 + timedelta(hours=31)))
    assert clocks["triage"].due_at == T0 + timedelta(days=2, hours=30)


def test_a_scan_raises_a_warning_then_a_breach_each_once():
    clocks = {}
    tracker.follow(clocks, True, change("case.received", T0))
    clock = clocks["triage"]
    assert tracker.due_alert(clock, T0 + timedelta(hours=35)) is None
    warning = tracker.due_alert(clock, T0 + timedelta(hours=37))
    assert warning.event_type == "sla.warning.triage" and warning.occurred_at == T0 + timedelta(hours=36)
    assert tracker.due_alert(clock, T0 + timedelta(hours=38)) is None
    breach = tracker.due_alert(clock, T0 + timedelta(hours=49))
    assert breach.event_type == "sla.breached.triage" and breach.occurred_at == T0 + timedelta(days=2)
    assert breach.data["allowance"] == {"amount": 2, "unit": "calendar_days"}
    assert tracker.due_alert(clock, T0 + timedelta(days=30)) is None and clock.next_check_at is None


def test_a_clock_found_past_its_deadline_is_breached_without_a_warning():
    clocks = {}
    tracker.follow(clocks, True, change("case.received", T0))
    alert = tracker.due_alert(clocks["triage"], T0 + timedelta(days=3))
    assert alert.kind == "breached" and clocks["triage"].warned_at is None
    assert tracker.due_alert(clocks["triage"], T0 + timedelta(days=4)) is None


def test_closing_stops_every_running_clock():
    clocks = {}
    tracker.follow(clocks, False, change("case.received", T0))
    tracker.follow(clocks, False, change("case.closed", T0 + timedelta(days=1)))
    assert all(not c.running for c in clocks.values())


def test_a_clock_paused_after_its_deadline_stays_due_and_still_breaches():
    clocks = {}
    tracker.follow(clocks, True, change("case.received", T0))  # priority: due two days later
    late = T0 + timedelta(days=3)
    tracker.follow(clocks, True, change("case.information_requested", late))
    clock = clocks["triage"]
    assert clock.paused and clock.due_at == T0 + timedelta(days=2), "the pause began once the time had run out"
    assert clock.next_check_at is not None, "the scanner still looks at it"
    alert = tracker.due_alert(clock, late + timedelta(minutes=1))
    assert alert is not None and alert.kind == "breached"
    tracker.follow(clocks, True, change("case.information_provided", late + timedelta(days=5)))
    assert clock.due_at == T0 + timedelta(days=2), "and resuming does not move it either"
