"""Working-day calendar: England and Wales bank holidays, counting conventions, London midnights."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earlyhelp.workflows.calendar import (
    LONDON,
    WorkingDayCalendar,
    bank_holidays,
    end_of_day,
    local_date,
    start_of_day,
)

UTC = timezone.utc
CAL = WorkingDayCalendar()


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the holiday table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2022, 6, 2),  # spring bank holiday, moved for the Platinum Jubilee
        date(2022, 6, 3),  # Platinum Jubilee (one-off)
        date(2022, 9, 19),  # state funeral of Queen Elizabeth II (one-off)
        date(2023, 5, 8),  # Coronation of King Charles III (one-off)
        date(2026, 12, 25),  # Christmas Day, a Friday
        date(2026, 12, 28),  # Boxing Day substitute (26 Dec 2026 is a Saturday)
        date(2027, 1, 1),
        date(2027, 3, 26),  # Good Friday
        date(2027, 3, 29),  # Easter Monday
        date(2027, 5, 3),  # early May
        date(2027, 5, 31),  # spring
        date(2027, 12, 27),  # Christmas substitute
        date(2027, 12, 28),  # Boxing Day substitute
    ],
)
def test_bank_holidays_are_not_working_days(day: date) -> None:
    assert day.weekday() < 5
    assert day in bank_holidays(day.year)
    assert not CAL.is_working_day(day)


def test_ordinary_days() -> None:
    assert CAL.is_working_day(date(2026, 11, 20))  # a Friday
    assert not CAL.is_working_day(date(2026, 11, 21))  # Saturday
    assert not CAL.is_working_day(date(2026, 11, 22))  # Sunday
    assert CAL.is_working_day(date(2022, 5, 30))  # the usual spring date, moved in 2022
    assert CAL.is_working_day(date(2026, 12, 29))


def test_scottish_only_holidays_do_not_count() -> None:
    assert CAL.is_working_day(date(2027, 1, 4))  # 2 January substitute in Scotland only
    assert CAL.is_working_day(date(2026, 11, 30))  # St Andrew's Day, Scotland only


def test_is_working_day_refuses_a_datetime() -> None:
    with pytest.raises(TypeError):
        CAL.is_working_day(utc(2026, 11, 20, 9))  # type: ignore[arg-type]


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        CAL.working_day_deadline(datetime(2026, 11, 20, 9), 4)


def test_n_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CAL.working_day_deadline(utc(2026, 11, 20, 9), 0)


def test_unknown_counting_is_refused() -> None:
    with pytest.raises(ValueError, match="counting"):
        CAL.working_day_deadline(utc(2026, 11, 20, 9), 4, counting="census")  # type: ignore[arg-type]


# --- local midnights ---------------------------------------------------------------------------


def test_local_midnight_in_summer_and_winter() -> None:
    assert end_of_day(date(2026, 10, 23)) == utc(2026, 10, 23, 23)  # BST
    assert end_of_day(date(2026, 10, 26)) == utc(2026, 10, 27, 0)  # GMT
    assert start_of_day(date(2026, 10, 25)) == utc(2026, 10, 24, 23)  # the 25-hour Sunday
    assert end_of_day(date(2026, 10, 25)) == utc(2026, 10, 26, 0)
    assert start_of_day(date(2027, 3, 28)) == utc(2027, 3, 28, 0)  # the 23-hour Sunday
    assert end_of_day(date(2027, 3, 28)) == utc(2027, 3, 28, 23)


def test_local_date_is_london_not_utc() -> None:
    assert local_date(utc(2026, 6, 7, 23, 30)) == date(2026, 6, 8)  # already Monday in London
    assert local_date(utc(2026, 12, 6, 23, 30)) == date(2026, 12, 6)  # still Sunday in winter


# --- working_day_deadline: the contract's convention -------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "deadline"),
    [
        # Friday 18:30: Friday itself is not day 1; Mon 23 .. Thu 26 Nov.
        (london(2026, 11, 20, 18, 30), 4, utc(2026, 11, 27, 0)),
        # Saturday counts from Monday: the same deadline as the Friday evening.
        (london(2026, 11, 21, 10, 0), 4, utc(2026, 11, 27, 0)),
        # 23 Dec 2026: Thu 24, (Christmas Fri 25, weekend, Boxing Day substitute Mon 28), Tue 29, Wed 30, Thu 31.
        (london(2026, 12, 23, 11, 0), 4, utc(2027, 1, 1, 0)),
        # 31 Dec 2026: (New Year's Day Fri 1 Jan), Mon 4 .. Thu 7 Jan.
        (london(2026, 12, 31, 16, 0), 4, utc(2027, 1, 8, 0)),
        # Thursday before Easter 2027: (Good Friday 26, Easter Monday 29 Mar), Tue 30 .. Fri 2 Apr (BST).
        (london(2027, 3, 25, 9, 0), 4, utc(2027, 4, 2, 23, 0)),
        # Before the early-May bank holiday (Mon 3 May 2027): Fri 30 Apr, Tue 4 .. Thu 6 May.
        (london(2027, 4, 29, 14, 0), 4, utc(2027, 5, 6, 23, 0)),
        # Before the spring bank holiday (Mon 31 May 2027): Tue 1 .. Fri 4 Jun.
        (london(2027, 5, 28, 9, 0), 4, utc(2027, 6, 4, 23, 0)),
        # On a bank holiday (early May, Mon 4 May 2026): counts from Tue 5; Tue .. Fri 8 May.
        (london(2026, 5, 4, 10, 0), 4, utc(2026, 5, 8, 23, 0)),
        # Sunday 23:30 UTC in summer is Monday 00:30 in London: day 1 is Tuesday 9 June.
        (utc(2026, 6, 7, 23, 30), 1, utc(2026, 6, 9, 23, 0)),
        # 2022 one-offs: Jubilee (Thu 2 and Fri 3 Jun), state funeral (Mon 19 Sep); 2023 Coronation (Mon 8 May).
        (london(2022, 6, 1, 10, 0), 1, utc(2022, 6, 6, 23, 0)),
        (london(2022, 9, 16, 10, 0), 1, utc(2022, 9, 20, 23, 0)),
        (london(2023, 5, 5, 10, 0), 1, utc(2023, 5, 9, 23, 0)),
    ],
)
def test_deadline_next_working_day(start: datetime, n: int, deadline: datetime) -> None:
    assert CAL.working_day_deadline(start, n) == deadline
    assert CAL.working_day_deadline(start, n).tzinfo == UTC


def test_deadline_across_the_october_clock_change() -> None:
    # Started Thursday 22 Oct 2026 (BST); clocks go back on Sunday 25 Oct.
    start = london(2026, 10, 22, 15, 0)
    assert CAL.working_day_deadline(start, 1) == utc(2026, 10, 23, 23, 0)  # end of Fri 23, BST
    assert CAL.working_day_deadline(start, 2) == utc(2026, 10, 27, 0, 0)  # end of Mon 26, GMT
    assert CAL.working_day_deadline(start, 4) == utc(2026, 10, 29, 0, 0)


def test_deadline_across_the_march_clock_change() -> None:
    # Clocks go forward on Sunday 28 Mar 2027 (also Easter Sunday).
    assert CAL.working_day_deadline(london(2027, 3, 24, 10, 0), 1) == utc(2027, 3, 26, 0, 0)  # end of Thu 25, GMT
    assert CAL.working_day_deadline(london(2027, 3, 25, 10, 0), 1) == utc(2027, 3, 30, 23, 0)  # end of Tue 30, BST


def test_extra_closure_from_data() -> None:
    cal = WorkingDayCalendar(extra_closures=[date(2026, 12, 29)])
    assert not cal.is_working_day(date(2026, 12, 29))
    # Thu 24, Wed 30, Thu 31, (Fri 1 Jan), Mon 4 Jan.
    assert cal.working_day_deadline(london(2026, 12, 23, 11, 0), 4) == utc(2027, 1, 5, 0, 0)
    # A closure on a weekend or bank holiday changes nothing.
    also = WorkingDayCalendar(extra_closures=[date(2026, 12, 26), date(2026, 12, 28)])
    assert also.working_day_deadline(london(2026, 12, 23, 11, 0), 4) == utc(2027, 1, 1, 0)


@pytest.mark.parametrize(
    ("start", "n", "deadline"),
    [
        # The start day is day 1 when it is a working day, whatever the hour.
        (london(2026, 11, 20, 18, 30), 4, utc(2026, 11, 26, 0)),
        (london(2026, 11, 20, 18, 30), 1, utc(2026, 11, 21, 0)),
        # A Saturday start still counts from Monday.
        (london(2026, 11, 21, 10, 0), 4, utc(2026, 11, 27, 0)),
        # A bank holiday start counts from the next working day.
        (london(2026, 12, 28, 10, 0), 1, utc(2026, 12, 30, 0)),
    ],
)
def test_deadline_start_day_counting(start: datetime, n: int, deadline: datetime) -> None:
    assert CAL.working_day_deadline(start, n, counting="start_day") == deadline


# --- elapsed and touched -----------------------------------------------------------------------


def test_working_days_elapsed_fractions_and_weekends() -> None:
    # Fri 12:00 -> Mon 12:00 (GMT): half of Friday and half of Monday.
    assert CAL.working_days_elapsed(london(2026, 11, 20, 12), london(2026, 11, 23, 12)) == pytest.approx(1.0)
    # Within one working day.
    assert CAL.working_days_elapsed(london(2026, 11, 23, 6), london(2026, 11, 23, 18)) == pytest.approx(0.5)
    # A whole weekend counts nothing.
    assert CAL.working_days_elapsed(london(2026, 11, 21, 0), london(2026, 11, 23, 0)) == 0.0
    # Across Christmas 2026: Wed 23 noon -> Tue 29 noon = half of 23, 24, half of 29.
    assert CAL.working_days_elapsed(london(2026, 12, 23, 12), london(2026, 12, 29, 12)) == pytest.approx(2.0)
    # Backwards or empty intervals are zero.
    assert CAL.working_days_elapsed(london(2026, 11, 23, 12), london(2026, 11, 23, 12)) == 0.0
    assert CAL.working_days_elapsed(london(2026, 11, 24, 12), london(2026, 11, 23, 12)) == 0.0


def test_working_days_elapsed_across_clock_change() -> None:
    # Fri 23 Oct 12:00 BST -> Mon 26 Oct 12:00 GMT: still half + half.
    assert CAL.working_days_elapsed(london(2026, 10, 23, 12), london(2026, 10, 26, 12)) == pytest.approx(1.0)


def test_working_days_touched() -> None:
    assert CAL.working_days_touched(london(2026, 11, 24, 15), london(2026, 11, 25, 9)) == 2
    assert CAL.working_days_touched(london(2026, 11, 24, 10), london(2026, 11, 24, 11)) == 1
    assert CAL.working_days_touched(london(2026, 11, 21, 10), london(2026, 11, 22, 18)) == 0  # weekend
    assert CAL.working_days_touched(london(2026, 11, 20, 17), london(2026, 11, 23, 9)) == 2  # Fri and Mon
    # Ending exactly at local midnight does not touch the next day.
    assert CAL.working_days_touched(london(2026, 11, 20, 17), london(2026, 11, 21, 0)) == 1
    assert CAL.working_days_touched(london(2026, 11, 23, 0), london(2026, 11, 23, 0)) == 0
    # Across Christmas 2026: 24, 29, 30, 31 Dec.
    assert CAL.working_days_touched(london(2026, 12, 24, 9), london(2027, 1, 1, 12)) == 4


def test_count_working_days_over_years() -> None:
    # 2027 has 261 weekdays, of which 8 are England and Wales bank holidays.
    assert CAL.count_working_days(date(2027, 1, 1), date(2028, 1, 1)) == 253
    assert CAL.count_working_days(date(2027, 1, 1), date(2027, 1, 1)) == 0


# --- properties --------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31, 23, 59), timezones=st.just(UTC)
)


def brute_count(first: date, stop: date) -> int:
    count, day = 0, first
    while day < stop:
        count += CAL.is_working_day(day)
        day += timedelta(days=1)
    return count


@settings(max_examples=300, deadline=None)
@given(start=instants, n=st.integers(min_value=1, max_value=30))
def test_deadline_property(start: datetime, n: int) -> None:
    deadline = CAL.working_day_deadline(start, n)
    local = deadline.astimezone(LONDON)
    assert (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    last_day = local.date() - timedelta(days=1)
    assert CAL.is_working_day(last_day)
    assert brute_count(local_date(start) + timedelta(days=1), local.date()) == n
    assert deadline > start


@settings(max_examples=200, deadline=None)
@given(start=instants, n=st.integers(min_value=1, max_value=30))
def test_start_day_property(start: datetime, n: int) -> None:
    deadline = CAL.working_day_deadline(start, n, counting="start_day")
    local = deadline.astimezone(LONDON)
    assert CAL.is_working_day(local.date() - timedelta(days=1))
    assert brute_count(local_date(start), local.date()) == n
    # Never later than the default convention, and at most one working day earlier.
    assert deadline <= CAL.working_day_deadline(start, n)


@settings(max_examples=200, deadline=None)
@given(first=instants, length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)))
def test_touched_and_elapsed_agree_with_brute_force(first: datetime, length: timedelta) -> None:
    end = first + length
    touched = 0
    elapsed = 0.0
    day = local_date(first)
    while start_of_day(day) < end:
        overlap = min(end, end_of_day(day)) - max(first, start_of_day(day))
        if CAL.is_working_day(day) and overlap > timedelta(0):
            touched += 1
            elapsed += overlap / (end_of_day(day) - start_of_day(day))
        day += timedelta(days=1)
    assert CAL.working_days_touched(first, end) == touched
    assert CAL.working_days_elapsed(first, end) == pytest.approx(elapsed)
