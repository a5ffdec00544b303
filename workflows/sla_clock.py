"""SLA clock arithmetic: due, warning and elapsed times of a stage's clock, from stored facts.

Pure functions: the engine stores a clock as columns (stage, started_at, the allowance, the pauses)
and recomputes the times whenever one of those changes (a pause, a resumption, a priority change at
triage, a new closure day). Nothing here reads the clock; "now" is always an argument.

The rules (the public contract's "SLA stages"):

* A clock runs from when the starting thing happened (``received_at``, a command's ``issued_at``).
* ``calendar_days``: due ``amount`` 24-hour days after the start, plus the exact length of every pause
  that counts.
* ``working_days``: due at the end of working day ``amount + T`` (``WorkingDayCalendar``'s counting
  convention), where T is the number of distinct working days the counted pauses touched (two short
  pauses on one Tuesday excuse that Tuesday once). A day that is not counted anyway excuses nothing:
  under the contract's convention the day the stage started is not one of its working days, so a pause
  on it moves nothing.
* Only time that was still running is excused: pauses are taken in order, and one that begins at or
  after the deadline as it stands (moved by the pauses before it) moves nothing, so an overdue stage
  stays overdue and a report never turns it "on time".
* While a counted pause is open the clock has no due time and no warning time (both None); a pause
  opened after the deadline leaves the deadline where it was.
* Pauses are clipped to the clock's start (time before a clock started cannot be excused) and
  overlapping pauses are merged, so the same time is never excused twice.
* Extensions (the ``extend_clock`` command) add to the allowance, each in its own unit: working days are
  counted like the allowance (on a working-day clock they lengthen the count, so pauses and closures
  still count as before; on a calendar-day clock the deadline moves to the end of the Nth working day
  after the day it fell on), calendar days are 24-hour days. The deadline as it stands, extensions
  included, decides whether a pause still excuses time. The warning moves with the deadline by the
  same extra.
* Warning: the moment ``warning_share`` of the allowance has gone, never after the due time.
  Calendar days: when share x amount x 24 h of unpaused time has run. Working days: the same share
  counted in working days, x = share x amount: the end of working day x when x is whole, otherwise
  that fraction of the way through working day ceil(x) by the clock (4 working days at 0.75: the
  end of day 3; 25 at 0.75: 18:00 on day 19). A pause that begins before the warning moves it, like
  the due time, by the working days it touched; a pause after it does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from .calendar import UTC, Counting, WorkingDayCalendar, end_of_day, local_date, start_of_day
from .sla_policy import Allowance, Unit

_DAY = timedelta(days=1)


class Pause(NamedTuple):
    """Time awaiting information: from `paused_at` until `resumed_at` (None: still waiting)."""

    paused_at: datetime
    resumed_at: datetime | None = None


PauseLike = Pause | tuple[datetime, datetime | None]


class Extension(NamedTuple):
    """Extra time a manager granted a stage (extend_clock): `amount` days of `unit`."""

    amount: int
    unit: Unit


@dataclass(frozen=True, slots=True)
class ClockTimes:
    """A clock's computed times; `due_at` and `warning_at` are None while it is paused."""

    stage: str
    started_at: datetime
    due_at: datetime | None
    warning_at: datetime | None

    @property
    def paused(self) -> bool:
        return self.due_at is None

    def warning_reached(self, at: datetime) -> bool:
        return self.warning_at is not None and at >= self.warning_at

    def breached(self, at: datetime) -> bool:
        # The allowance ends at due_at, so the instant itself is already late.
        return self.due_at is not None and at >= self.due_at


def compute_clock(
    stage: str,
    started_at: datetime,
    allowance: Allowance,
    pauses: Iterable[PauseLike],
    calendar: WorkingDayCalendar,
    warning_share: float,
    counting: Counting = "next_working_day",
    extensions: Iterable[Extension] = (),
) -> ClockTimes:
    """Due and warning times of one stage's clock (recompute after any change to its inputs)."""
    start = _utc(started_at, "started_at")
    merged = normalise_pauses(start, pauses)
    extra = _extra(extensions)
    due = due_at(start, allowance, merged, calendar, counting, extensions=extra)  # once: the warning is bounded by it
    return ClockTimes(stage=stage, started_at=start, due_at=due,
                      warning_at=_warning(start, allowance, merged, due, calendar, warning_share, counting, extra))


def due_at(
    started_at: datetime,
    allowance: Allowance,
    pauses: Iterable[PauseLike],
    calendar: WorkingDayCalendar,
    counting: Counting = "next_working_day",
    extensions: Iterable[Extension] | tuple[int, int] = (),
) -> datetime | None:
    """When the allowance (and any extensions) ends, as aware UTC; None while a pause is open."""
    start = _utc(started_at, "started_at")
    merged = normalise_pauses(start, pauses)
    extra_working, extra_calendar = _extra(extensions)
    calendar_days = allowance.unit == "calendar_days"

    def deadline(moved) -> datetime:  # moved: the pauses' time (calendar) or the working days they excused
        if calendar_days:
            return _after_working_days(start + (allowance.amount + extra_calendar) * _DAY + moved,
                                       extra_working, calendar)
        return calendar.working_day_deadline(start, allowance.amount + extra_working + moved, counting) + \
            extra_calendar * _DAY

    paused, excused = timedelta(), set()
    due = deadline(paused if calendar_days else 0)
    for pause in merged:  # in order: each one can move the deadline past the next one's start
        if pause.paused_at >= due:
            break  # the clock had already run out: this pause, and every later one, moves nothing
        if pause.resumed_at is None:
            return None
        if calendar_days:
            paused += pause.resumed_at - pause.paused_at
            due = deadline(paused)
        else:
            excused |= _working_days_touched([pause], calendar, _first_counted_day(start, counting))
            due = deadline(len(excused))
    return due


def _extra(extensions) -> tuple[int, int]:
    """(working days, calendar days) granted, from Extensions or an already summed pair."""
    if isinstance(extensions, tuple) and len(extensions) == 2 and all(isinstance(n, int) for n in extensions):
        return extensions
    working = calendar = 0
    for extension in extensions:
        amount, unit = extension
        if unit == "working_days":
            working += amount
        elif unit == "calendar_days":
            calendar += amount
        else:
            raise ValueError(f"an extension's unit must be working_days or calendar_days, got {unit!r}")
    return working, calendar


def _after_working_days(moment: datetime, days: int, calendar: WorkingDayCalendar) -> datetime:
    """The end of working day `days` after the local day `moment` falls in (a deadline at local midnight
    falls in the day it ends); `moment` itself when `days` is 0."""
    if days == 0:
        return moment
    return calendar.working_day_deadline(moment - timedelta(microseconds=1), days, "next_working_day")


def warning_at(
    started_at: datetime,
    allowance: Allowance,
    pauses: Iterable[PauseLike],
    calendar: WorkingDayCalendar,
    warning_share: float,
    counting: Counting = "next_working_day",
    extensions: Iterable[Extension] = (),
) -> datetime | None:
    """When `warning_share` of the allowance has gone (see the module doc); None while paused."""
    start = _utc(started_at, "started_at")
    merged = normalise_pauses(start, pauses)
    extra = _extra(extensions)
    due = due_at(start, allowance, merged, calendar, counting, extensions=extra)
    return _warning(start, allowance, merged, due, calendar, warning_share, counting, extra)


def _warning(start: datetime, allowance: Allowance, merged: list[Pause], due: datetime | None,
             calendar: WorkingDayCalendar, warning_share: float, counting: Counting,
             extra: tuple[int, int] = (0, 0)) -> datetime | None:
    if not 0 < warning_share < 1:
        raise ValueError(f"warning_share must be between 0 and 1 (exclusive), got {warning_share}")
    if due is None:
        return None
    extra_working, extra_calendar = extra
    if allowance.unit == "calendar_days":  # the warning moves with the deadline, by the same extra
        warning = _after_working_days(
            _calendar_warning(start, (warning_share * allowance.amount + extra_calendar) * _DAY, merged),
            extra_working, calendar)
    else:
        warning = _working_warning(start, warning_share * allowance.amount + extra_working, merged, calendar,
                                   counting) + extra_calendar * _DAY
    # Under "start_day" counting a late start can put the share's point before the start itself.
    return min(max(warning, start), due)


def elapsed(
    started_at: datetime,
    at: datetime,
    allowance_unit: Unit,
    pauses: Iterable[PauseLike],
    calendar: WorkingDayCalendar,
) -> float:
    """Time the clock has run by `at`, in the allowance's unit, not counting pauses.

    Calendar days are 24-hour days; working days follow ``WorkingDayCalendar.working_days_elapsed``
    (fractions of a working day by the clock). This measures time used, for reports; the deadline
    itself is set by the counting convention, which does not count the start day's remainder.
    """
    start, end = _utc(started_at, "started_at"), _utc(at, "at")
    if end <= start:
        return 0.0
    # An open pause, and any pause still running at `at`, counts only up to `at`.
    spans = [
        (p.paused_at, min(p.resumed_at or end, end))
        for p in normalise_pauses(start, pauses)
        if p.paused_at < end
    ]
    if allowance_unit == "calendar_days":
        paused = sum((b - a for a, b in spans), timedelta())
        return (end - start - paused) / _DAY
    paused_days = sum(calendar.working_days_elapsed(a, b) for a, b in spans)
    return max(0.0, calendar.working_days_elapsed(start, end) - paused_days)


def normalise_pauses(started_at: datetime, pauses: Iterable[PauseLike]) -> list[Pause]:
    """Pauses in order, in UTC, clipped to start at or after `started_at`, overlaps merged.

    Raises ValueError for a naive time or a pause that resumes before it began.
    """
    start = _utc(started_at, "started_at")
    clipped: list[Pause] = []
    for raw in pauses:
        paused, resumed = raw
        paused = _utc(paused, "paused_at")
        resumed = None if resumed is None else _utc(resumed, "resumed_at")
        if resumed is not None and resumed < paused:
            raise ValueError(
                f"a pause resumes ({resumed.isoformat()}) before it began ({paused.isoformat()})"
            )
        if resumed is not None and resumed <= start:
            continue  # wholly before the clock started
        clipped.append(Pause(max(paused, start), resumed))
    clipped.sort(key=lambda p: p.paused_at)
    merged: list[Pause] = []
    for pause in clipped:
        if pause.resumed_at is not None and pause.resumed_at == pause.paused_at:
            continue  # an empty pause excuses nothing
        if merged and (merged[-1].resumed_at is None or pause.paused_at <= merged[-1].resumed_at):
            last = merged[-1]
            resumed = None if last.resumed_at is None or pause.resumed_at is None else max(
                last.resumed_at, pause.resumed_at
            )
            merged[-1] = Pause(last.paused_at, resumed)
        else:
            merged.append(pause)
    return merged


def _calendar_warning(start: datetime, allowed: timedelta, pauses: Sequence[Pause]) -> datetime:
    # Walk forward, spending unpaused time until `allowed` has run; a pause on the way moves it on.
    moment, remaining = start, allowed
    for pause in pauses:
        running = pause.paused_at - moment
        if running >= remaining:
            break
        remaining -= running
        moment = pause.resumed_at
    return moment + remaining


def _working_warning(
    start: datetime,
    share_of_days: float,
    pauses: Sequence[Pause],
    calendar: WorkingDayCalendar,
    counting: Counting,
) -> datetime:
    # Pauses that begin before the warning moment extend it by the working days they touched;
    # each one can move the moment past the next pause's start, so take them in order.
    extra = 0
    for i, pause in enumerate(pauses):
        moment = _working_moment(start, share_of_days + extra, calendar, counting)
        if pause.paused_at >= moment:
            return moment
        extra = len(_working_days_touched(pauses[: i + 1], calendar, _first_counted_day(start, counting)))
    return _working_moment(start, share_of_days + extra, calendar, counting)


def _first_counted_day(start: datetime, counting: Counting):
    """The first local date that can be one of the stage's working days: the start day itself only when
    it counts as day 1 ("start_day"); under the contract's convention, the day after."""
    return local_date(start) + (_DAY if counting == "next_working_day" else timedelta())


def _working_days_touched(pauses: Sequence[Pause], calendar: WorkingDayCalendar, first_counted) -> set:
    """The distinct counted working days any of the (closed) pauses overlapped: each is excused once."""
    days = set()
    for pause in pauses:
        if pause.resumed_at <= pause.paused_at:
            continue
        first, last = max(local_date(pause.paused_at), first_counted), local_date(pause.resumed_at)
        if pause.resumed_at == start_of_day(last):  # ending at midnight does not touch the day it begins
            last -= _DAY
        day = first
        while day <= last:
            if calendar.is_working_day(day):
                days.add(day)
            day += _DAY
    return days


def _working_moment(
    start: datetime, days: float, calendar: WorkingDayCalendar, counting: Counting
) -> datetime:
    # Round away float noise (0.7 * 10 is 7.000000000000001) before splitting whole and fraction.
    days = round(days, 6)
    whole = math.floor(days)
    fraction = days - whole
    if fraction == 0:
        return calendar.working_day_deadline(start, whole, counting)
    day = calendar.nth_working_day(start, whole + 1, counting)
    return start_of_day(day) + fraction * (end_of_day(day) - start_of_day(day))


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone, got the naive time {value.isoformat()}")
    return value.astimezone(UTC)
