"""extend_clock: the arithmetic of extra time, the clock keeping it through every recompute, and its refusals."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from earlyhelp.schemas import serialize_event
from earlyhelp.workflows.case_flow import CaseFlow, Change
from earlyhelp.workflows.case_machine import ClockNotRunning, TransitionNotAllowed
from earlyhelp.workflows.calendar import WorkingDayCalendar
from earlyhelp.workflows.policy_check import OpenClock, compare
from earlyhelp.workflows.sla_clock import Extension, Pause, compute_clock, due_at
from earlyhelp.workflows.sla_policy import Allowance, SlaPolicy, load_policy
from earlyhelp.workflows.sla_tracking import SlaTracker

from tests.factories import command, notification

UTC = timezone.utc
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, GMT
CAL = WorkingDayCalendar()
FOUR_WORKING = Allowance(amount=4, unit="working_days")
FOURTEEN_DAYS = Allowance(amount=14, unit="calendar_days")


def times(allowance, extensions=(), pauses=()):
    return compute_clock("stage", T0, allowance, pauses, CAL, 0.75, "next_working_day", extensions)


# --- the arithmetic ------------------------------------------------------------------------------------

def test_no_extension_changes_nothing():
    assert times(FOUR_WORKING) == compute_clock("stage", T0, FOUR_WORKING, (), CAL, 0.75)
    assert times(FOURTEEN_DAYS, ()) == compute_clock("stage", T0, FOURTEEN_DAYS, (), CAL, 0.75)


def test_working_days_on_a_working_day_clock_count_like_the_allowance():
    # 4 working days from Monday: Tue..Fri, due at the end of Friday 6 November. Two more: Mon 9, Tue 10.
    assert times(FOUR_WORKING).due_at == datetime(2026, 11, 7, 0, 0, tzinfo=UTC)
    extended = times(FOUR_WORKING, [Extension(2, "working_days")])
    assert extended.due_at == datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
    # The warning moves with it: 3 + 2 working days, the end of Monday 9 November.
    assert extended.warning_at == datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
    # Two grants of one day are one grant of two.
    assert times(FOUR_WORKING, [Extension(1, "working_days")] * 2) == extended


def test_working_days_skip_bank_holidays_like_the_allowance():
    start = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)  # Monday before Christmas
    plain = compute_clock("s", start, FOUR_WORKING, (), CAL, 0.75)
    extended = compute_clock("s", start, FOUR_WORKING, (), CAL, 0.75, extensions=[Extension(1, "working_days")])
    # Tue 22, Wed 23, Thu 24, then Christmas Day and the Boxing Day substitute (Mon 28): day 4 is Tue 29.
    assert plain.due_at == datetime(2026, 12, 30, 0, 0, tzinfo=UTC)
    assert extended.due_at == datetime(2026, 12, 31, 0, 0, tzinfo=UTC)
    # From Wednesday 23: Thu 24, Tue 29, Wed 30, Thu 31; the fifth day skips New Year's Day: Monday 4 January.
    start_of_holiday = datetime(2026, 12, 23, 9, 0, tzinfo=UTC)
    assert compute_clock("s", start_of_holiday, FOUR_WORKING, (), CAL, 0.75,
                         extensions=[Extension(1, "working_days")]).due_at == datetime(2027, 1, 5, 0, 0, tzinfo=UTC)


def test_calendar_days_are_24_hour_days():
    plain, extended = times(FOURTEEN_DAYS), times(FOURTEEN_DAYS, [Extension(3, "calendar_days")])
    assert extended.due_at - plain.due_at == timedelta(days=3)
    assert extended.warning_at - plain.warning_at == timedelta(days=3)
    # On a working-day clock too.
    assert times(FOUR_WORKING, [Extension(1, "calendar_days")]).due_at == times(FOUR_WORKING).due_at + timedelta(days=1)


def test_working_days_on_a_calendar_clock_end_at_the_end_of_the_nth_working_day_after_its_deadline():
    # 14 days from Monday 2 November 09:00: Monday 16 November 09:00; two working days after that day: Wednesday.
    assert times(FOURTEEN_DAYS).due_at == datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    assert times(FOURTEEN_DAYS, [Extension(2, "working_days")]).due_at == datetime(2026, 11, 19, 0, 0, tzinfo=UTC)


def test_a_pause_counts_while_the_extended_deadline_still_runs():
    # Overdue at the end of Friday 6 November; extended by two working days, a pause on Monday 9 counts.
    pause = [Pause(datetime(2026, 11, 9, 10, 0, tzinfo=UTC), datetime(2026, 11, 9, 15, 0, tzinfo=UTC))]
    assert times(FOUR_WORKING, pauses=pause).due_at == times(FOUR_WORKING).due_at  # past the deadline: nothing
    extended = times(FOUR_WORKING, [Extension(2, "working_days")], pause)
    assert extended.due_at == datetime(2026, 11, 12, 0, 0, tzinfo=UTC)


def test_an_open_pause_leaves_no_deadline_extended_or_not():
    assert times(FOUR_WORKING, [Extension(2, "working_days")], [Pause(T0 + timedelta(hours=1))]).due_at is None


def test_an_extension_of_an_unknown_unit_is_a_mistake():
    with pytest.raises(ValueError):
        due_at(T0, FOUR_WORKING, (), CAL, extensions=[Extension(1, "fortnights")])


# --- the clock keeps its extensions ----------------------------------------------------------------------

def change(event_type: str, at: datetime) -> Change:
    return Change(event_type, 1, "x", None, at, "cause")


def test_a_pause_resumption_and_priority_change_keep_the_extension():
    tracker = SlaTracker()
    clocks = {}
    tracker.follow(clocks, False, change("case.received", T0))
    clock = clocks["triage"]
    tracker.extend(clock, Extension(3, "calendar_days"))
    assert clock.due_at == T0 + timedelta(days=17)
    tracker.follow(clocks, False, change("case.information_requested", T0 + timedelta(days=1)))
    tracker.follow(clocks, False, change("case.information_provided", T0 + timedelta(days=2)))
    assert clock.due_at == T0 + timedelta(days=18)  # the pause's day and the three days granted
    tracker.follow(clocks, True, change("case.triaged", T0 + timedelta(days=2, hours=1)))  # priority: 2 days
    assert clock.due_at == T0 + timedelta(days=6)


def test_a_new_policy_keeps_the_extension():
    clocks = {}
    SlaTracker().follow(clocks, False, change("case.received", T0))
    clock = clocks["triage"]
    SlaTracker().extend(clock, Extension(2, "calendar_days"))
    stricter = SlaTracker(policy_with(triage={"amount": 7, "unit": "calendar_days"}))
    assert stricter.rebase(clock) is True
    assert clock.allowance.amount == 7 and clock.due_at == T0 + timedelta(days=9)
    assert stricter.rebase(clock) is False  # once is enough: nothing more changes


def test_a_breach_already_raised_stands():
    tracker = SlaTracker()
    clocks = {}
    tracker.follow(clocks, True, change("case.received", T0))  # priority: 2 days
    clock = clocks["triage"]
    alert = tracker.due_alert(clock, T0 + timedelta(days=3))
    assert alert.kind == "breached"
    tracker.extend(clock, Extension(5, "calendar_days"))
    assert clock.breached_at == T0 + timedelta(days=3) and clock.due_at == T0 + timedelta(days=7)
    assert clock.next_check_at is None and tracker.due_alert(clock, T0 + timedelta(days=8)) is None


def test_a_warning_already_raised_is_not_raised_again():
    tracker = SlaTracker()
    clocks = {}
    tracker.follow(clocks, True, change("case.received", T0))
    clock = clocks["triage"]
    assert tracker.due_alert(clock, T0 + timedelta(hours=40)).kind == "warning"
    tracker.extend(clock, Extension(1, "calendar_days"))
    assert clock.next_check_at == clock.due_at == T0 + timedelta(days=3)


def policy_with(**allowances) -> SlaPolicy:
    data = load_policy().model_dump(mode="json")
    for stage, allowance in allowances.items():
        data["stages"][stage]["allowance"] = allowance
    return SlaPolicy.model_validate(data)


def test_the_policy_check_counts_the_extended_deadline():
    started = T0
    now = T0 + timedelta(days=15)  # past 14 days, within 14 + 3
    plain = OpenClock("triage", False, started, (), "Dover")
    extended = dataclasses.replace(plain, extensions=(Extension(3, "calendar_days"),))
    policy = load_policy()
    result = compare([plain, extended], policy, policy, now)
    assert result["stages"]["triage"]["open"] == 2 and result["stages"]["triage"]["overdue_now"] == 1


# --- the command, through the flow -------------------------------------------------------------------------

CASE_ID = "case-0001"


@pytest.fixture
def flow() -> CaseFlow:
    return CaseFlow(sla=SlaTracker())


def test_extend_clock_moves_the_deadline_keeps_the_state_and_keeps_the_reason_out_of_the_event(flow):
    case, _ = flow.open(CASE_ID, notification())
    state, version, before = case.state, case.version, case.clocks["triage"].due_at
    outcome = flow.apply(case, command("extend_clock", CASE_ID, stage="triage",
                                       extra={"amount": 3, "unit": "calendar_days"}, reason="Family abroad"),
                         None)
    [changed] = outcome.changes
    assert case.state == state and case.version == version + 1
    assert changed.event_type == "sla.extended.triage" and changed.state == changed.previous_state == state
    assert changed.data == {"previous_due_at": before.isoformat(),
                            "due_at": (before + timedelta(days=3)).isoformat()}
    assert changed.history_only["reason"] == "Family abroad"
    assert case.clocks["triage"].extensions == [Extension(3, "calendar_days")]
    event = {"schema_version": 1, "event_id": "e-1", "event_type": changed.event_type,
             "occurred_at": changed.occurred_at, "recorded_at": changed.occurred_at, "case_id": CASE_ID,
             "notification_id": case.notification_id, "state": state, "sequence": changed.sequence,
             "source": case.source, "kind": case.kind, "priority": case.priority, "data": changed.data}
    body = json.loads(serialize_event(event))
    assert set(body["data"]) == {"previous_due_at", "due_at"} and "Family abroad" not in json.dumps(body)


def test_a_stage_that_has_not_started_is_refused_and_nothing_changes(flow):
    case, _ = flow.open(CASE_ID, notification())
    before = dataclasses.asdict(case)
    with pytest.raises(ClockNotRunning) as refused:
        flow.apply(case, command("extend_clock", CASE_ID, stage="allocation"), None)
    assert "allocation clock has not started" in refused.value.reason
    assert dataclasses.asdict(case) == before


def test_a_stopped_stage_is_refused_and_nothing_changes(flow):
    case, _ = flow.open(CASE_ID, notification())
    flow.apply(case, command("triage", CASE_ID), None)
    before = dataclasses.asdict(case)
    with pytest.raises(ClockNotRunning) as refused:
        flow.apply(case, command("extend_clock", CASE_ID, stage="triage"), None)
    assert "stopped at" in refused.value.reason and refused.value.error == "stage: the triage clock is not running"
    assert dataclasses.asdict(case) == before


def test_a_closed_case_is_refused_by_its_state(flow):
    case, _ = flow.open(CASE_ID, notification())
    flow.apply(case, command("close", CASE_ID), notification())
    with pytest.raises(TransitionNotAllowed) as refused:
        flow.apply(case, command("extend_clock", CASE_ID), None)
    assert not isinstance(refused.value, ClockNotRunning) and refused.value.state == "closed"


def test_a_paused_clock_may_be_extended_and_says_it_has_no_deadline_yet(flow):
    case, _ = flow.open(CASE_ID, notification())
    flow.apply(case, command("request_information", CASE_ID), None)
    [changed] = flow.apply(case, command("extend_clock", CASE_ID), None).changes
    assert changed.data == {"previous_due_at": None, "due_at": None}
    assert case.clocks["triage"].extensions == [Extension(2, "working_days")]


@pytest.mark.parametrize("extra", [{"amount": 0, "unit": "working_days"}, {"amount": 2, "unit": "hours"},
                                   {"amount": 2}])
def test_a_bad_extra_is_refused_as_invalid(extra):
    from earlyhelp.schemas import MessageRefused

    with pytest.raises(MessageRefused):
        command("extend_clock", CASE_ID, extra=extra)


# --- the report ------------------------------------------------------------------------------------------

def test_the_report_counts_extensions_per_stage_and_district_and_judges_by_the_extended_deadline():
    from datetime import date

    from earlyhelp.reports.figures import CaseRow, ExtensionRow, HistoryRow, Period, extensions, stage_measures

    period = Period(date(2026, 11, 1), date(2026, 11, 30))
    rows = [ExtensionRow("c1", "triage", 3, "calendar_days", T0, "Dover"),
            ExtensionRow("c1", "triage", 2, "working_days", T0, "Dover"),
            ExtensionRow("c2", "allocation", 1, "working_days", T0, None),
            ExtensionRow("c3", "triage", 1, "working_days", datetime(2026, 12, 1, tzinfo=UTC), "Dover")]
    counted = extensions(rows, period, ["Dover"])
    assert counted["total"] == 3 and counted["cases"] == 2
    assert counted["stages"][0] == {"stage": "triage", "extensions": 2, "cases": 1, "working_days": 2,
                                    "calendar_days": 3}
    assert [(r["district"], r["stage"]) for r in counted["by_district"]] == [("Dover", "triage"),
                                                                             ("unassigned", "allocation")]
    case = CaseRow("c1", "request_for_support", "school", False, "triaged", T0, "Dover")
    history = [HistoryRow("c1", 1, "case.received", T0, T0),
               HistoryRow("c1", 2, "sla.extended.triage", T0, T0, {"extra": {"amount": 3, "unit": "calendar_days"}}),
               HistoryRow("c1", 3, "case.triaged", T0 + timedelta(days=16), T0 + timedelta(days=16))]
    policy = load_policy()
    [triage] = [m for m in stage_measures(case, history, policy, policy.make_calendar()) if m.stage == "triage"]
    assert triage.due_at == T0 + timedelta(days=17) and triage.status(T0 + timedelta(days=20)) == "on_time"


def test_earlyhelp_command_takes_the_extra_as_dotted_keys():
    from earlyhelp.cli.clients import command_fields
    from earlyhelp.workflows.commands import COMMANDS

    fields = command_fields(COMMANDS["extend_clock"].model, {"stage": "allocation", "extra.amount": "3",
                                                             "extra.unit": "working_days", "reason": "Holiday"})
    assert fields == {"stage": "allocation", "extra": {"amount": 3, "unit": "working_days"}, "reason": "Holiday"}
    assert command_fields(COMMANDS["provide_information"].model, {"child_voice": "x"}) == {"fields": {"child_voice": "x"}}


def test_a_tracker_stamps_its_policy_version_on_every_clock_it_computes():
    clocks = {}
    SlaTracker().follow(clocks, False, change("case.received", T0))
    assert clocks["triage"].policy_version is None  # the file's or the shipped policy
    stored = SlaTracker(load_policy(), version=3)
    assert stored.rebase(clocks["triage"]) is False and clocks["triage"].policy_version == 3
    stored.use(policy_with(triage={"amount": 7, "unit": "calendar_days"}), 4)
    stored.follow(clocks, False, change("case.information_requested", T0 + timedelta(hours=1)))
    assert clocks["triage"].policy_version == 4
