"""SLA clock arithmetic: due and warning times, pauses, elapsed time, priority recompute."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earlyhelp.workflows.calendar import LONDON, WorkingDayCalendar
from earlyhelp.workflows.sla_clock import (
    ClockTimes,
    Pause,
    compute_clock,
    due_at,
    elapsed,
    normalise_pauses,
    warning_at,
)
from earlyhelp.workflows.sla_policy import Allowance, load_policy

UTC = timezone.utc
CAL = WorkingDayCalendar()
TRIAGE = Allowance(amount=14, unit="calendar_days")
PRIORITY = Allowance(amount=2, unit="calendar_days")
ALLOCATION = Allowance(amount=4, unit="working_days")
ASSESSMENT = Allowance(amount=25, unit="working_days")


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- calendar-day allowances -------------------------------------------------------------------

RECEIVED = utc(2026, 11, 20, 9, 14)


def test_calendar_due_is_24_hour_days() -> None:
    assert due_at(RECEIVED, TRIAGE, [], CAL) == utc(2026, 12, 4, 9, 14)
    assert due_at(RECEIVED, PRIORITY, [], CAL) == utc(2026, 11, 22, 9, 14)  # weekends count


def test_calendar_due_is_24_hours_across_the_clock_change() -> None:
    # 24-hour days, not wall-clock days: 09:00 BST on Friday 23 Oct + 14 days is 08:00 GMT.
    start = london(2026, 10, 23, 9)
    assert due_at(start, TRIAGE, [], CAL) == utc(2026, 11, 6, 8)


def test_calendar_pause_of_three_hours_moves_due_three_hours() -> None:
    pause = (utc(2026, 11, 21, 10), utc(2026, 11, 21, 13))
    assert due_at(RECEIVED, TRIAGE, [pause], CAL) == utc(2026, 12, 4, 12, 14)


def test_two_calendar_pauses_add_up() -> None:
    pauses = [Pause(utc(2026, 11, 21, 10), utc(2026, 11, 21, 13)), Pause(utc(2026, 11, 25), utc(2026, 11, 26))]
    assert due_at(RECEIVED, TRIAGE, pauses, CAL) == utc(2026, 12, 5, 12, 14)


def test_open_pause_means_no_due_time() -> None:
    pauses = [(utc(2026, 11, 21, 10), None)]
    assert due_at(RECEIVED, TRIAGE, pauses, CAL) is None
    assert warning_at(RECEIVED, TRIAGE, pauses, CAL, 0.75) is None
    assert due_at(utc(2026, 11, 23, 10), ALLOCATION, pauses, CAL) is None
    clock = compute_clock("triage", RECEIVED, TRIAGE, pauses, CAL, 0.75)
    assert clock.paused and clock.due_at is None and clock.warning_at is None
    assert not clock.breached(utc(2030, 1, 1)) and not clock.warning_reached(utc(2030, 1, 1))


def test_calendar_warning() -> None:
    # 75% of 14 days = 10.5 days.
    assert warning_at(RECEIVED, TRIAGE, [], CAL, 0.75) == utc(2026, 11, 30, 21, 14)
    # A pause before the warning moves it; one after it does not.
    before = (utc(2026, 11, 21, 10), utc(2026, 11, 21, 13))
    after = (utc(2026, 12, 2), utc(2026, 12, 3))
    assert warning_at(RECEIVED, TRIAGE, [before], CAL, 0.75) == utc(2026, 12, 1, 0, 14)
    assert warning_at(RECEIVED, TRIAGE, [after], CAL, 0.75) == utc(2026, 11, 30, 21, 14)
    # A pause spanning the unpaused warning point pushes it past the pause by the remainder.
    spanning = (utc(2026, 11, 30, 9, 14), utc(2026, 12, 2, 9, 14))
    assert warning_at(RECEIVED, TRIAGE, [spanning], CAL, 0.75) == utc(2026, 12, 2, 21, 14)
    assert due_at(RECEIVED, TRIAGE, [spanning], CAL) == utc(2026, 12, 6, 9, 14)


def test_priority_change_at_triage_is_a_recompute() -> None:
    policy = load_policy()
    ordinary = compute_clock("triage", RECEIVED, policy.allowance_for("triage", False), [], CAL, 0.75)
    urgent = compute_clock("triage", RECEIVED, policy.allowance_for("triage", True), [], CAL, 0.75)
    assert ordinary.due_at == utc(2026, 12, 4, 9, 14)
    assert urgent.due_at == utc(2026, 11, 22, 9, 14)
    assert urgent.warning_at == utc(2026, 11, 21, 21, 14)
    assert urgent.breached(utc(2026, 11, 22, 9, 14)) and not urgent.breached(utc(2026, 11, 22, 9, 13))


# --- working-day allowances --------------------------------------------------------------------

TRIAGED = london(2026, 11, 23, 10)  # Monday


def test_working_day_due_and_warning() -> None:
    # Tue 24 .. Fri 27 Nov; warning at the end of day 3 (Thu 26).
    assert due_at(TRIAGED, ALLOCATION, [], CAL) == utc(2026, 11, 28, 0)
    assert warning_at(TRIAGED, ALLOCATION, [], CAL, 0.75) == utc(2026, 11, 27, 0)
    # 25 days from Mon 23 Nov, over Christmas: day 25 is Wed 30 Dec; 18.75 days gone is 18:00 on day 19 (Fri 18 Dec).
    assert due_at(TRIAGED, ASSESSMENT, [], CAL) == utc(2026, 12, 31, 0)
    assert warning_at(TRIAGED, ASSESSMENT, [], CAL, 0.75) == utc(2026, 12, 18, 18)


def test_working_day_pause_touching_two_days_moves_two_days() -> None:
    pause = (london(2026, 11, 24, 15), london(2026, 11, 25, 9))  # Tue afternoon to Wed morning
    # Six working days from Tue 24: Tue, Wed, Thu, Fri, Mon 30, Tue 1 Dec.
    assert due_at(TRIAGED, ALLOCATION, [pause], CAL) == utc(2026, 12, 2, 0)
    assert warning_at(TRIAGED, ALLOCATION, [pause], CAL, 0.75) == utc(2026, 12, 1, 0)


def test_two_pauses_on_the_same_working_day_excuse_it_once() -> None:
    morning = (london(2026, 11, 24, 9), london(2026, 11, 24, 10))
    afternoon = (london(2026, 11, 24, 14), london(2026, 11, 24, 15))
    # Tuesday is excused once: five working days from Tue 24 end on Mon 30 Nov.
    assert due_at(TRIAGED, ALLOCATION, [morning, afternoon], CAL) == utc(2026, 12, 1, 0)
    assert due_at(TRIAGED, ALLOCATION, [morning], CAL) == utc(2026, 12, 1, 0)


def test_working_day_pause_over_a_weekend_moves_nothing() -> None:
    pause = (london(2026, 11, 28, 10), london(2026, 11, 29, 18))
    assert due_at(TRIAGED, ALLOCATION, [pause], CAL) == utc(2026, 11, 28, 0)
    assert due_at(TRIAGED, ASSESSMENT, [pause], CAL) == utc(2026, 12, 31, 0)


def test_working_day_pause_over_a_bank_holiday_moves_nothing() -> None:
    pause = (london(2026, 12, 25, 9), london(2026, 12, 28, 17))  # Christmas Day to the Boxing Day substitute
    assert due_at(TRIAGED, ASSESSMENT, [pause], CAL) == utc(2026, 12, 31, 0)


def test_working_day_pause_after_the_warning_does_not_move_it() -> None:
    pause = (london(2026, 11, 27, 10), london(2026, 11, 27, 11))  # Fri, after the warning
    assert warning_at(TRIAGED, ALLOCATION, [pause], CAL, 0.75) == utc(2026, 11, 27, 0)
    assert due_at(TRIAGED, ALLOCATION, [pause], CAL) == utc(2026, 12, 1, 0)  # one more day: Mon 30


def test_overlapping_pauses_are_not_excused_twice() -> None:
    pauses = [(london(2026, 11, 24, 9), london(2026, 11, 24, 12)), (london(2026, 11, 24, 11), london(2026, 11, 24, 14))]
    assert normalise_pauses(TRIAGED, pauses) == [Pause(utc(2026, 11, 24, 9), utc(2026, 11, 24, 14))]
    assert due_at(TRIAGED, ALLOCATION, pauses, CAL) == utc(2026, 12, 1, 0)
    assert due_at(RECEIVED, TRIAGE, pauses, CAL) == utc(2026, 12, 4, 14, 14)


def test_time_before_the_clock_started_is_not_excused() -> None:
    before = (london(2026, 11, 20, 9), london(2026, 11, 20, 17))
    straddling = (london(2026, 11, 23, 9), london(2026, 11, 23, 12))
    assert due_at(TRIAGED, ALLOCATION, [before], CAL) == utc(2026, 11, 28, 0)
    assert normalise_pauses(TRIAGED, [straddling]) == [Pause(utc(2026, 11, 23, 10), utc(2026, 11, 23, 12))]
    assert due_at(RECEIVED, TRIAGE, [(utc(2026, 11, 20, 8), utc(2026, 11, 20, 10))], CAL) == utc(2026, 12, 4, 10)


def test_bad_pauses_are_refused() -> None:
    with pytest.raises(ValueError, match="before it began"):
        due_at(RECEIVED, TRIAGE, [(utc(2026, 11, 22), utc(2026, 11, 21))], CAL)
    with pytest.raises(ValueError, match="time zone"):
        due_at(RECEIVED, TRIAGE, [(datetime(2026, 11, 22), None)], CAL)
    with pytest.raises(ValueError, match="time zone"):
        due_at(datetime(2026, 11, 20), TRIAGE, [], CAL)


def test_start_day_counting_and_closures() -> None:
    assert due_at(TRIAGED, ALLOCATION, [], CAL, "start_day") == utc(2026, 11, 27, 0)
    closed = WorkingDayCalendar([date(2026, 11, 25)])
    assert due_at(TRIAGED, ALLOCATION, [], closed) == utc(2026, 12, 1, 0)


def test_start_day_warning_never_before_the_start() -> None:
    # 1 working day, start day counted, started at 21:00: 75% of the day had gone before it started.
    start = london(2026, 11, 23, 21)
    one = Allowance(amount=1, unit="working_days")
    assert due_at(start, one, [], CAL, "start_day") == utc(2026, 11, 24, 0)
    assert warning_at(start, one, [], CAL, 0.75, "start_day") == start


def test_compute_clock_returns_utc() -> None:
    clock = compute_clock("allocation", TRIAGED, ALLOCATION, [], CAL, 0.75)
    assert clock == ClockTimes("allocation", utc(2026, 11, 23, 10), utc(2026, 11, 28, 0), utc(2026, 11, 27, 0))
    assert clock.started_at.tzinfo == UTC and not clock.paused


# --- elapsed -----------------------------------------------------------------------------------


def test_elapsed_calendar_days_excludes_pauses() -> None:
    pause = (utc(2026, 11, 21, 9, 14), utc(2026, 11, 22, 9, 14))
    assert elapsed(RECEIVED, utc(2026, 11, 25, 9, 14), "calendar_days", [], CAL) == pytest.approx(5.0)
    assert elapsed(RECEIVED, utc(2026, 11, 25, 9, 14), "calendar_days", [pause], CAL) == pytest.approx(4.0)
    # An open pause counts up to `at`.
    assert elapsed(RECEIVED, utc(2026, 11, 25, 9, 14), "calendar_days", [(utc(2026, 11, 24, 9, 14), None)], CAL) == pytest.approx(4.0)
    assert elapsed(RECEIVED, RECEIVED - timedelta(hours=1), "calendar_days", [], CAL) == 0.0


def test_elapsed_working_days_excludes_pauses() -> None:
    # Mon 10:00 -> Thu 12:00: 14/24 of Monday, Tue, Wed, half of Thursday.
    at = london(2026, 11, 26, 12)
    assert elapsed(TRIAGED, at, "working_days", [], CAL) == pytest.approx(14 / 24 + 2.5)
    pause = (london(2026, 11, 24, 12), london(2026, 11, 25, 12))  # one working day of time
    assert elapsed(TRIAGED, at, "working_days", [pause], CAL) == pytest.approx(14 / 24 + 1.5)


# --- properties --------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 6, 30), timezones=st.just(UTC)
)
pause_lists = st.lists(
    st.tuples(st.timedeltas(timedelta(0), timedelta(days=40)), st.timedeltas(timedelta(0), timedelta(days=5))),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    start=instants,
    amount=st.integers(1, 30),
    unit=st.sampled_from(["calendar_days", "working_days"]),
    share=st.floats(0.05, 0.95),
    offsets=pause_lists,
)
def test_warning_is_after_the_start_and_not_after_due(start, amount, unit, share, offsets) -> None:
    allowance = Allowance(amount=amount, unit=unit)
    pauses = [(start + a, start + a + b) for a, b in offsets]
    due = due_at(start, allowance, pauses, CAL)
    warning = warning_at(start, allowance, pauses, CAL, share)
    assert due is not None and warning is not None
    assert start < warning < due
    # Pauses only ever move the due time later.
    assert due >= due_at(start, allowance, [], CAL)


# --- pauses counted as the contract says (issue 14, item 5) -------------------------------------

units = st.sampled_from(["calendar_days", "working_days"])


@settings(max_examples=300, deadline=None)
@given(start=instants, amount=st.integers(1, 30), unit=units, offsets=pause_lists,
       after=st.timedeltas(timedelta(0), timedelta(days=30)), length=st.none() | st.timedeltas(timedelta(0), timedelta(days=10)))
def test_a_pause_that_begins_at_or_after_the_deadline_moves_nothing(start, amount, unit, offsets, after, length):
    allowance = Allowance(amount=amount, unit=unit)
    pauses = [(start + a, start + a + b) for a, b in offsets]
    due = due_at(start, allowance, pauses, CAL)
    late = (due + after, None if length is None else due + after + length)  # open or closed
    assert due_at(start, allowance, [*pauses, late], CAL) == due
    # So an overdue stage stays overdue: the deadline it is judged by cannot move past its stop.
    assert compute_clock("s", start, allowance, [*pauses, late], CAL, 0.75).due_at == due


@settings(max_examples=300, deadline=None)
@given(start=instants, amount=st.integers(1, 30), day=st.integers(1, 20),
       cuts=st.lists(st.integers(1, 999), min_size=2, max_size=6, unique=True))
def test_a_working_day_touched_by_several_pauses_is_excused_once(start, amount, day, cuts):
    allowance = Allowance(amount=amount, unit="working_days")
    local_day = start.astimezone(LONDON).date() + timedelta(days=day)
    # The local day's bounds in UTC: a day of 23 or 25 hours when the clocks change, cut by thousandths.
    midnight = datetime(local_day.year, local_day.month, local_day.day, tzinfo=LONDON).astimezone(UTC)
    following = local_day + timedelta(days=1)
    length = datetime(following.year, following.month, following.day, tzinfo=LONDON).astimezone(UTC) - midnight
    at = [midnight + length * c / 1000 for c in sorted(cuts)]
    one = [(at[0], at[-1])]
    several = list(zip(at[::2], at[1::2]))
    # One pause over the stretch, or several short ones inside it on the same day: the same excuse.
    assert due_at(start, allowance, several, CAL) == due_at(start, allowance, one, CAL)
    assert due_at(start, allowance, one, CAL) <= due_at(start, allowance, [], CAL) + timedelta(days=7)


@settings(max_examples=300, deadline=None)
@given(start=instants, amount=st.integers(1, 30), a=st.floats(0, 1), b=st.floats(0, 1))
def test_a_pause_on_the_day_a_working_day_stage_started_moves_nothing(start, amount, a, b):
    allowance = Allowance(amount=amount, unit="working_days")
    local = start.astimezone(LONDON)
    end_of_start_day = datetime(local.year, local.month, local.day, tzinfo=LONDON) + timedelta(days=1)
    rest = end_of_start_day.astimezone(UTC) - start
    first, second = sorted((a, b))
    pause = (start + rest * first, start + rest * second)
    assert due_at(start, allowance, [pause], CAL) == due_at(start, allowance, [], CAL)


def test_the_three_readings_on_a_worked_example():
    # Triaged Monday 23 Nov 2026 10:00 (London = UTC in winter): 4 working days, due end of Friday 27th.
    triaged = utc(2026, 11, 23, 10)
    due = utc(2026, 11, 28)
    assert due_at(triaged, ALLOCATION, [], CAL) == due
    # A pause on the Monday itself moves nothing: that day was never one of the four.
    assert due_at(triaged, ALLOCATION, [(utc(2026, 11, 23, 11), utc(2026, 11, 23, 15))], CAL) == due
    # Two pauses on the Tuesday excuse it once: due end of Monday 30th.
    tuesday = [(utc(2026, 11, 24, 9), utc(2026, 11, 24, 10)), (utc(2026, 11, 24, 14), utc(2026, 11, 24, 15))]
    assert due_at(triaged, ALLOCATION, tuesday, CAL) == utc(2026, 12, 1)
    # A pause from Saturday 28th, once the stage is overdue, moves nothing, open or closed.
    assert due_at(triaged, ALLOCATION, [(utc(2026, 11, 28, 9), None)], CAL) == due
    assert due_at(triaged, ALLOCATION, [(utc(2026, 11, 28, 9), utc(2026, 12, 2, 9))], CAL) == due
