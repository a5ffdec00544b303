"""Working days in England and Wales, in Europe/London time: the calendar the SLA clocks count on.

A working day is Monday to Friday, not an England-and-Wales bank holiday (from the `holidays`
package, which includes substitute days and one-off days such as the 2022 Platinum Jubilee, the
2022 state funeral and the 2023 Coronation) and not one of the authority's own closure days
(``extra_closures``: data, so a newly announced bank holiday or a local closure needs no release).

Counting convention (the contract's: "a working-day allowance ends at the end of the Nth working
day after the day the stage started; a stage started on a weekend or bank holiday counts from the
next working day"):

* ``counting="next_working_day"`` (the default): day 1 is the first working day strictly after the
  local date on which the stage started, whatever kind of day that date was. A stage started on
  Friday at 18:30, or on Saturday, has Monday (if it is a working day) as day 1.
* ``counting="start_day"`` (the DfE Children in Need census validator's convention): the start's
  local date is day 1 if it is a working day; otherwise day 1 is the next working day.

Either way the deadline is the end of day N: the local midnight that follows it, returned as an
aware UTC instant (23:00 UTC the evening before while British Summer Time is in force, 00:00 UTC in
winter). Every method takes aware datetimes and works on their Europe/London local date, never on
their UTC date: 23:30 UTC on a summer Sunday is already Monday in London.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

Counting = Literal["next_working_day", "start_day"]
COUNTING_CONVENTIONS: tuple[str, ...] = ("next_working_day", "start_day")

LONDON = ZoneInfo("Europe/London")
UTC = timezone.utc
_ONE_DAY = timedelta(days=1)


@lru_cache(maxsize=None)
def bank_holidays(year: int) -> frozenset[date]:
    """England and Wales bank holidays in `year` (cached: the table never changes within a process)."""
    # England and Wales share one list; "ENG" is the subdivision the package keeps for it.
    table = holidays.UnitedKingdom(subdiv="ENG", years=year)
    return frozenset(d for d in table if d.year == year)


def _require_aware(value: datetime, name: str) -> None:
    # A naive time would be read in the server's zone, silently moving deadlines by an hour or more.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone, got the naive time {value.isoformat()}")


def local_date(instant: datetime) -> date:
    """The Europe/London calendar date of an aware instant."""
    _require_aware(instant, "instant")
    return instant.astimezone(LONDON).date()


def start_of_day(day: date) -> datetime:
    """The local midnight that begins `day`, as an aware UTC instant."""
    # London changes its clocks at 01:00/02:00, so local midnight always exists and is never repeated.
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


def end_of_day(day: date) -> datetime:
    """The local midnight that ends `day` (the start of the next day), as an aware UTC instant."""
    return start_of_day(day + _ONE_DAY)


class WorkingDayCalendar:
    """England and Wales working days, plus the authority's own closure days."""

    def __init__(self, extra_closures: Iterable[date] = ()) -> None:
        self.extra_closures: frozenset[date] = frozenset(extra_closures)
        # Non-working weekdays per year (bank holidays and closures), filled on first use.
        self._closed: dict[int, frozenset[date]] = {}

    def __repr__(self) -> str:
        return f"WorkingDayCalendar(extra_closures={sorted(self.extra_closures)!r})"

    def closed_weekdays(self, year: int) -> frozenset[date]:
        """Monday-to-Friday dates in `year` that are not working days (bank holidays, closures)."""
        closed = self._closed.get(year)
        if closed is None:
            candidates = bank_holidays(year) | {d for d in self.extra_closures if d.year == year}
            # Only weekdays matter: a weekend is closed anyway, and counting it twice would be wrong.
            closed = frozenset(d for d in candidates if d.weekday() < 5)
            self._closed[year] = closed
        return closed

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday, not a bank holiday in England and Wales, not an extra closure."""
        if isinstance(day, datetime):
            # datetime is a subclass of date; its UTC date could be the wrong local day.
            raise TypeError("is_working_day takes a date; use local_date() on an instant first")
        return day.weekday() < 5 and day not in self.closed_weekdays(day.year)

    def count_working_days(self, first: date, stop: date) -> int:
        """Working days d with first <= d < stop (0 if stop <= first)."""
        if stop <= first:
            return 0
        # Weekdays by arithmetic, then subtract the closed weekdays in range: cheap for long spans.
        full_weeks, rest = divmod((stop - first).days, 7)
        weekdays = full_weeks * 5 + sum(1 for i in range(rest) if (first.weekday() + i) % 7 < 5)
        closed = sum(
            1
            for year in range(first.year, (stop - _ONE_DAY).year + 1)
            for d in self.closed_weekdays(year)
            if first <= d < stop
        )
        return weekdays - closed

    def nth_working_day(self, start: datetime, n: int, counting: Counting = "next_working_day") -> date:
        """The local date of working day `n` of an allowance that started at `start` (see module doc)."""
        _check_counting(counting)
        if n < 1:
            raise ValueError(f"a working-day count must be at least 1, got {n}")
        day = local_date(start)
        counted = 1 if counting == "start_day" and self.is_working_day(day) else 0
        if counted == n:
            return day
        while counted < n:
            day += _ONE_DAY
            if self.is_working_day(day):
                counted += 1
        return day

    def working_day_deadline(
        self, start: datetime, n: int, counting: Counting = "next_working_day"
    ) -> datetime:
        """The end (following local midnight, as UTC) of working day `n` counted from `start`."""
        return end_of_day(self.nth_working_day(start, n, counting))

    def working_days_elapsed(self, start: datetime, end: datetime) -> float:
        """Working time in [start, end), in working days.

        Whole working days in between count 1 each; the partial days at either end count the share
        of that local day that lies inside the interval (a working day is always a 24-hour day in
        London, because the clocks only change on Sundays). Non-working days count nothing.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        if end <= start:
            return 0.0
        first, last = local_date(start), local_date(end)
        if first == last:
            return self._share_of_day(first, start, end)
        return (
            self._share_of_day(first, start, end_of_day(first))
            + self.count_working_days(first + _ONE_DAY, last)
            + self._share_of_day(last, start_of_day(last), end)
        )

    def working_days_touched(self, start: datetime, end: datetime) -> int:
        """Working days that the interval [start, end) overlaps at all (0 for an empty interval).

        An interval ending exactly at a local midnight does not touch the day that midnight begins.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        if end <= start:
            return 0
        last = local_date(end)
        if end == start_of_day(last):
            last -= _ONE_DAY
        return self.count_working_days(local_date(start), last + _ONE_DAY)

    def _share_of_day(self, day: date, start: datetime, end: datetime) -> float:
        if not self.is_working_day(day):
            return 0.0
        return (end - start) / (end_of_day(day) - start_of_day(day))


def _check_counting(counting: str) -> None:
    if counting not in COUNTING_CONVENTIONS:
        raise ValueError(
            f"unknown counting convention {counting!r}; use one of {', '.join(COUNTING_CONVENTIONS)}"
        )
