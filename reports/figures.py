"""The managers' figures, computed as pure functions over plain rows (no database, no clock reads).

What the 2014 briefing reports, per period and per district (docs/domain.md, "What managers report"):
notifications and the change on the same period last year, the share from each source in the
service's own groups, the kinds (missing children and their splits), step-downs from social care per
week, timeliness against each SLA stage, time spent in each stage, and open unallocated cases by age.

Definitions (docs/operating.md repeats them for the people who read the report):
- A notification is in the period when its `received_at` falls in it (London dates, both ends included).
- A case's district is the one set at triage, `unassigned` before.
- Step-downs are notifications of kind `step_down`, not `case.stepped_down`.
- A stage is measured in the period when its clock *started* in the period. It is on time when the
  stopping event (the SLA policy's `stop_on`) happened before the due time, late when it happened at or
  after it, and late too when it is still open and already past due at `as_of`. Stages still open and
  not yet due are counted as in progress, outside the percentage. Due times come from the same clock
  arithmetic the engine uses (workflows/sla_clock.py), so time awaiting information does not count.
- Cases closed as `duplicate` (opened in error) are left out of the timeliness and stage-time figures.
- A change was recorded late when the engine recorded it more than 24 hours after it happened (its event
  carries data.recorded_late_hours); counted among the changes that happened in the period.
- A stage's clock extended by a manager (extend_clock, its `sla.extended.<stage>` history rows before the
  stage stopped) is judged by its extended deadline, as the engine judges it; the extensions themselves are
  counted per stage and district when they were granted in the period.
- A notification linked to a case already open for the child (`case.notification_linked`) opens no case, so it
  is not among the notifications counted above; linked notifications are counted apart, by when they were
  received. A re-referral within 12 months is a case received in the period whose child had a case closed
  in the 12 months before (its `case.received` names `previous_case_ids`), as the national measure has it.
- Time in stage is working time between start and stop, less time awaiting information, in working days.
  The median is the middle value (the mean of the two middle ones for an even count); the 90th
  percentile is the nearest-rank value (the ceil(0.9 n)-th smallest).
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from earlyhelp.schemas.routing import UNASSIGNED
from earlyhelp.workflows.calendar import WorkingDayCalendar, end_of_day, local_date, start_of_day
from earlyhelp.workflows.sla_clock import Extension, Pause, compute_clock
from earlyhelp.workflows.sla_policy import STAGES, SlaPolicy

# The service's own source groups, in the 2014 briefing's order: (group, label, contract sources).
SOURCE_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("social_care", "Social care (specialist children's services)", ("social_care",)),
    ("schools", "Schools and PRUs", ("school",)),
    ("health", "Health", ("health",)),
    ("family", "Family self-referral", ("family",)),
    ("housing_police_voluntary", "Housing, police and voluntary", ("housing", "police", "voluntary")),
    ("not_recorded", "Not recorded (and other)", ("not_recorded", "other")),
)
KIND_LABELS = {"request_for_support": "Requests for support", "step_down": "Step-downs from social care",
               "missing_child": "Missing-child notifications"}
UNALLOCATED_STATES = ("received", "checked", "awaiting_information", "triaged")
# Ages of open unallocated cases, in calendar days since received_at: (label, lowest day, highest day).
AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("0-2 days", 0, 2), ("3-7 days", 3, 7), ("8-14 days", 8, 14), ("15-28 days", 15, 28), ("over 28 days", 29, None),
)
PAUSE_EVENT, RESUME_EVENT = "case.information_requested", "case.information_provided"
RECORDED_LATE_AFTER = timedelta(hours=24)  # as the engine marks it (consumers/recording.py)
EXTENDED_EVENT = "sla.extended."  # + the stage: a manager's extend_clock


@dataclass(frozen=True)
class CaseRow:
    """A case's facts for reports: no names, dates of birth, addresses or free text."""

    case_id: str
    kind: str
    source: str
    priority: bool
    state: str
    received_at: datetime
    district: str | None = None
    service: str | None = None
    social_care_status: str | None = None   # missing_child only
    placing_authority: bool = False         # missing_child placed here by another authority

    @property
    def district_name(self) -> str:
        return self.district or UNASSIGNED


@dataclass(frozen=True)
class HistoryRow:
    """One transition from case_history (what happened, when it happened, when it was recorded)."""

    case_id: str
    sequence: int
    event_type: str
    occurred_at: datetime
    recorded_at: datetime | None = None
    data: dict = field(default_factory=dict)


class InDistrict:
    """A row of a case's district (None before triage): `district_name` is what the tables and filters use."""

    district: str | None

    @property
    def district_name(self) -> str:
        return self.district or UNASSIGNED


@dataclass(frozen=True)
class LateChange(InDistrict):
    """A change recorded more than 24 hours after it happened, with the case's district for the filter."""

    case_id: str
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    district: str | None = None


@dataclass(frozen=True)
class Period:
    """London dates, both ends included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return start_of_day(self.first)

    @property
    def end(self) -> datetime:
        return end_of_day(self.last)

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    def year_before(self) -> Period:
        return Period(_year_earlier(self.first), _year_earlier(self.last))


def _year_earlier(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def percentile_90(values: list[float]) -> float | None:
    """Nearest rank: the ceil(0.9 n)-th smallest value."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[math.ceil(0.9 * len(ordered)) - 1], 2)


# -- volumes --------------------------------------------------------------------------------------
def by_source(cases: list[CaseRow]) -> list[dict]:
    """Counts and shares in the service's groups; social care split into step-downs and other.

    Missing-child notifications are counted apart (`by_kind`), as the 2014 briefing lists them: they come
    almost all from the police, and counting them here would shrink every other source's share (schools'
    60% of requests would read as 42% of everything), so shares are comparable year on year only without.
    """
    cases = [c for c in cases if c.kind != "missing_child"]
    total = len(cases)
    rows = []
    for group, label, sources in SOURCE_GROUPS:
        members = [c for c in cases if c.source in sources]
        row = {"group": group, "label": label, "count": len(members), "percent": percent(len(members), total)}
        if group == "social_care":
            step_downs = sum(1 for c in members if c.kind == "step_down")
            row["parts"] = [
                {"group": "social_care_step_down", "label": "stepped down from social care", "count": step_downs,
                 "percent": percent(step_downs, total)},
                {"group": "social_care_other", "label": "other social care (duty team, joint work)",
                 "count": len(members) - step_downs, "percent": percent(len(members) - step_downs, total)},
            ]
        elif len(sources) > 1:
            row["parts"] = [{"group": s, "label": s.replace("_", " "), "count": n, "percent": percent(n, total)}
                            for s in sources for n in [sum(1 for c in members if c.source == s)]]
        rows.append(row)
    return rows


def by_kind(cases: list[CaseRow]) -> dict:
    """Each kind's count and share, and the missing-child splits the briefing gives."""
    total = len(cases)
    counts = Counter(c.kind for c in cases)
    kinds = [{"kind": k, "label": label, "count": counts.get(k, 0), "percent": percent(counts.get(k, 0), total)}
             for k, label in KIND_LABELS.items()]
    missing = [c for c in cases if c.kind == "missing_child"]
    status = Counter(c.social_care_status or "not_recorded" for c in missing)
    placed = sum(1 for c in missing if c.placing_authority)
    not_open = status.get("closed", 0) + status.get("never_known", 0)
    return {"kinds": kinds, "missing_child": {
        "total": len(missing),
        "local": len(missing) - placed, "local_percent": percent(len(missing) - placed, len(missing)),
        "placed_by_other_authorities": placed, "placed_percent": percent(placed, len(missing)),
        "not_open_to_social_care": not_open, "not_open_percent": percent(not_open, len(missing)),
        "closed_to_social_care": status.get("closed", 0), "never_known": status.get("never_known", 0),
        "open_to_social_care": status.get("open", 0), "status_not_recorded": status.get("not_recorded", 0),
    }}


def by_district(cases: list[CaseRow], previous: list[CaseRow] | None, districts: list[str]) -> list[dict]:
    """Every configured district (and unassigned), with last year's count where there is data."""
    total = len(cases)
    now, before = Counter(c.district_name for c in cases), Counter(c.district_name for c in previous or [])
    names = list(districts) + sorted(set(now) - set(districts) - {UNASSIGNED})
    if now.get(UNASSIGNED) or before.get(UNASSIGNED):
        names.append(UNASSIGNED)
    rows = []
    for name in names:
        row = {"district": name, "count": now.get(name, 0), "percent": percent(now.get(name, 0), total)}
        row.update(_change(now.get(name, 0), before.get(name, 0) if previous is not None else None))
        rows.append(row)
    return rows


def _change(count: int, previous: int | None) -> dict:
    if previous is None:
        return {"previous_year": None, "change": None, "change_percent": None}
    return {"previous_year": previous, "change": count - previous,
            "change_percent": round(100.0 * (count - previous) / previous, 1) if previous else None}


def week_start(instant: datetime) -> date:
    day = local_date(instant)
    return day - timedelta(days=day.weekday())


def step_downs_per_week(cases: list[CaseRow], period: Period) -> dict:
    """Notifications of kind step_down per week (Monday to Sunday), every week of the period listed."""
    counts = Counter(week_start(c.received_at) for c in cases if c.kind == "step_down")
    first = period.first - timedelta(days=period.first.weekday())
    weeks = []
    while first <= period.last:
        weeks.append({"week_starting": first.isoformat(), "count": counts.get(first, 0)})
        first += timedelta(days=7)
    total = sum(counts.values())
    return {"total": total, "weeks": weeks, "average_per_week": round(total / len(weeks), 2) if weeks else None}


# -- timeliness -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageMeasure:
    """One case's stage: its clock's times and what became of it."""

    case_id: str
    stage: str
    district: str
    started_at: datetime
    due_at: datetime | None
    stopped_at: datetime | None
    working_days: float | None  # time in stage, without pauses; None while open

    def status(self, as_of: datetime) -> str:
        if self.stopped_at is not None:
            return "on_time" if self.due_at is not None and self.stopped_at < self.due_at else "late"
        if self.due_at is not None and as_of >= self.due_at:
            return "open_overdue"
        return "in_progress"


def stage_measures(case: CaseRow, history: list[HistoryRow], policy: SlaPolicy,
                   calendar: WorkingDayCalendar) -> list[StageMeasure]:
    """Each SLA stage this case started, measured from its recorded history times."""
    rows = sorted(history, key=lambda h: h.sequence)
    measures = []
    for stage in STAGES:
        rule = policy.stages[stage]
        starts = [i for i, h in enumerate(rows) if h.event_type == rule.start_on]
        if not starts:
            continue
        begin = starts[0]
        # The contract: clocks run from when things happened; the triage clock from received_at.
        started = case.received_at if rule.start_on == "case.received" else rows[begin].occurred_at
        stop = next((h for h in rows[begin + 1:] if h.event_type in rule.stop_on), None)
        window = rows[begin + 1:] if stop is None else [h for h in rows[begin + 1:] if h.sequence < stop.sequence]
        pauses = _pauses(window)
        times = compute_clock(stage, started, policy.allowance_for(stage, case.priority), pauses, calendar,
                              policy.warning_share, policy.counting, _extensions(window, stage))
        stopped = stop.occurred_at if stop else None
        measures.append(StageMeasure(
            case.case_id, stage, case.district_name, started, times.due_at, stopped,
            _working_time(calendar, started, stopped, pauses) if stopped else None))
    return measures


def _extensions(rows: list[HistoryRow], stage: str) -> list[Extension]:
    return [Extension(h.data["extra"]["amount"], h.data["extra"]["unit"]) for h in rows
            if h.event_type == EXTENDED_EVENT + stage and "extra" in (h.data or {})]


def _pauses(rows: list[HistoryRow]) -> list[Pause]:
    pauses, open_at = [], None
    for h in rows:
        if h.event_type == PAUSE_EVENT and open_at is None:
            open_at = h.occurred_at
        elif h.event_type == RESUME_EVENT and open_at is not None:
            pauses.append(Pause(open_at, h.occurred_at))
            open_at = None
    if open_at is not None:
        pauses.append(Pause(open_at, None))
    return pauses


def _working_time(calendar: WorkingDayCalendar, start: datetime, stop: datetime, pauses: list[Pause]) -> float:
    elapsed = calendar.working_days_elapsed(start, stop)
    for pause in pauses:
        lo, hi = max(pause.paused_at, start), min(pause.resumed_at or stop, stop)
        elapsed -= calendar.working_days_elapsed(lo, hi) if hi > lo else 0.0
    return round(max(elapsed, 0.0), 4)


def timeliness(measures: list[StageMeasure], as_of: datetime, policy: SlaPolicy,
               districts: list[str]) -> dict:
    """Compliance and time in stage, per stage, and per stage and district."""
    def summarise(items: list[StageMeasure]) -> dict:
        status = Counter(m.status(as_of) for m in items)
        judged = status["on_time"] + status["late"] + status["open_overdue"]
        days = [m.working_days for m in items if m.working_days is not None]
        return {"measured": judged, "on_time": status["on_time"], "late": status["late"],
                "open_overdue": status["open_overdue"], "in_progress": status["in_progress"],
                "percent_on_time": percent(status["on_time"], judged),
                "median_working_days": median(days), "p90_working_days": percentile_90(days)}

    stages = []
    for stage in STAGES:
        rule = policy.stages[stage]
        allowance = f"{rule.allowance.amount} {rule.allowance.unit.replace('_', ' ')}"
        if rule.priority_allowance:
            allowance += f" ({rule.priority_allowance.amount} {rule.priority_allowance.unit.replace('_', ' ')}" \
                         " if priority)"
        stages.append({"stage": stage, "allowance": allowance,
                       **summarise([m for m in measures if m.stage == stage])})
    grouped: dict[tuple[str, str], list[StageMeasure]] = defaultdict(list)
    for m in measures:
        grouped[(m.district, m.stage)].append(m)
    names = list(districts) + sorted({d for d, _ in grouped} - set(districts) - {UNASSIGNED}) + [UNASSIGNED]
    per_district = [{"district": d, "stage": s, **summarise(grouped[(d, s)])}
                    for d in names for s in STAGES if grouped.get((d, s))]
    return {"stages": stages, "by_district": per_district}


@dataclass(frozen=True)
class ExtensionRow(InDistrict):
    """One extend_clock a manager sent: the stage, the extra time, when it happened (no reason: free text)."""

    case_id: str
    stage: str
    amount: int
    unit: str
    occurred_at: datetime
    district: str | None = None


def extensions(rows: list[ExtensionRow], period: Period, districts: list[str]) -> dict:
    """Clock extensions granted in the period, per stage and per district and stage: how many, on how many
    cases, and the days granted in each unit."""
    granted = [r for r in rows if period.contains(r.occurred_at)]

    def summarise(items: list[ExtensionRow]) -> dict:
        return {"extensions": len(items), "cases": len({r.case_id for r in items}),
                "working_days": sum(r.amount for r in items if r.unit == "working_days"),
                "calendar_days": sum(r.amount for r in items if r.unit == "calendar_days")}

    grouped: dict[tuple[str, str], list[ExtensionRow]] = defaultdict(list)
    for r in granted:
        grouped[(r.district_name, r.stage)].append(r)
    names = list(districts) + sorted({d for d, _ in grouped} - set(districts) - {UNASSIGNED}) + [UNASSIGNED]
    return {"total": len(granted), "cases": len({r.case_id for r in granted}),
            "stages": [{"stage": s, **summarise([r for r in granted if r.stage == s])} for s in STAGES],
            "by_district": [{"district": d, "stage": s, **summarise(grouped[(d, s)])}
                            for d in names for s in STAGES if grouped.get((d, s))]}


@dataclass(frozen=True)
class LinkRow(InDistrict):
    """A notification linked to a case already open (case.notification_linked): when it was received, from
    which source, of what kind, and on which identifiers it matched (names, never values)."""

    case_id: str
    occurred_at: datetime
    source: str
    kind: str
    matched_on: tuple[str, ...]
    district: str | None = None


def known_children(links: list[LinkRow], cases: list[CaseRow], re_referred: set[str], period: Period) -> dict:
    """Notifications linked to an open case (received in the period), by source and by identifier matched; and
    re-referrals within 12 months among the cases received in the period, with their share."""
    linked = [link for link in links if period.contains(link.occurred_at)]
    sources, matched = Counter(link.source for link in linked), Counter(m for link in linked for m in link.matched_on)
    again = sum(1 for c in cases if c.case_id in re_referred)
    return {"linked_notifications": {"total": len(linked), "by_source": dict(sorted(sources.items())),
                                     "by_matched_on": dict(sorted(matched.items()))},
            "re_referrals_within_12_months": {"count": again, "of_notifications": len(cases),
                                              "percent": percent(again, len(cases))}}


def recorded_late(changes: list[LateChange], period: Period) -> dict:
    """How many changes that happened in the period were recorded more than 24 hours later, by event type."""
    late = [c for c in changes if period.contains(c.occurred_at) and c.recorded_at - c.occurred_at > RECORDED_LATE_AFTER]
    by_type = Counter(c.event_type for c in late)
    return {"total": len(late), "by_event_type": dict(sorted(by_type.items()))}


def unallocated_by_age(cases: list[CaseRow], as_of: datetime) -> dict:
    """Open cases not yet allocated, by calendar days since received_at (London dates)."""
    today = local_date(as_of)
    open_cases = [c for c in cases if c.state in UNALLOCATED_STATES]
    ages = [(today - local_date(c.received_at)).days for c in open_cases]
    bands = [{"age": label, "count": sum(1 for a in ages if a >= lo and (hi is None or a <= hi))}
             for label, lo, hi in AGE_BANDS]
    by_state = Counter(c.state for c in open_cases)
    return {"as_of": as_of.isoformat(), "total": len(open_cases), "bands": bands,
            "by_state": {s: by_state.get(s, 0) for s in UNALLOCATED_STATES},
            "oldest_days": max(ages) if ages else None}


# -- the whole report -----------------------------------------------------------------------------
def build_report(*, period: Period, cases: list[CaseRow], stage_cases: list[CaseRow],
                 history: dict[str, list[HistoryRow]], previous_cases: list[CaseRow] | None,
                 open_cases: list[CaseRow], policy: SlaPolicy, districts: list[str], as_of: datetime,
                 district: str | None = None, late_changes: list[LateChange] | None = None,
                 clock_extensions: list[ExtensionRow] | None = None,
                 links: list[LinkRow] | None = None, re_referred: set[str] | None = None) -> dict:
    """Everything the report shows, as plain data (the json format is exactly this).

    `cases`: cases received in the period; `stage_cases`: cases with a stage that may have started in
    the period, and `history` their transitions (case_id -> rows); `previous_cases`: cases received in
    the same period a year earlier, or None when the data does not reach back that far; `open_cases`:
    the cases open and not yet allocated at `as_of`; `late_changes`: changes recorded more than 24 hours
    after they happened (at least those that happened in the period); `links`: notifications linked to an
    open case, `re_referred`: the ids of cases whose case.received names previous cases.
    """
    late_changes = late_changes or []
    clock_extensions = clock_extensions or []
    links = links or []
    if district:
        def only(rows):
            return None if rows is None else [c for c in rows if c.district_name == district]
        cases, stage_cases, previous_cases, open_cases, late_changes = (
            only(cases), only(stage_cases), only(previous_cases), only(open_cases), only(late_changes))
        clock_extensions = only(clock_extensions)
        links = only(links)
    calendar = policy.make_calendar()
    measures = [m for case in stage_cases
                if not _closed_as_duplicate(history.get(case.case_id, []))
                for m in stage_measures(case, history.get(case.case_id, []), policy, calendar)
                if period.contains(m.started_at)]
    shown_districts = [district] if district else districts
    previous_total = None if previous_cases is None else len(previous_cases)
    return {
        "title": "Early Help notifications and timeliness",
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat(), "district": district,
                   "as_of": as_of.isoformat()},
        "notifications": {"total": len(cases), **_change(len(cases), previous_total)},
        "by_source": by_source(cases),
        "by_source_excludes": {"missing_child": sum(1 for c in cases if c.kind == "missing_child")},
        "by_kind": by_kind(cases),
        "by_district": by_district(cases, previous_cases, shown_districts),
        "step_downs": step_downs_per_week(cases, period),
        "timeliness": timeliness(measures, as_of, policy, shown_districts),
        "unallocated": unallocated_by_age(open_cases, as_of),
        "recorded_late": recorded_late(late_changes, period),
        "extensions": extensions(clock_extensions, period, shown_districts),
        "known_children": known_children(links, cases, re_referred or set(), period),
    }


def _closed_as_duplicate(history: list[HistoryRow]) -> bool:
    return any(h.event_type == "case.closed" and (h.data or {}).get("reason") == "duplicate" for h in history)
