"""What a new SLA policy would do to every open clock, before anyone applies it (`earlyhelp policy check`).

Pure: it takes the open clocks (stage, priority, start, pauses, district), the policy in force, the new
one and "now", and recomputes each clock's deadline under both with the engine's own arithmetic
(workflows.sla_clock). Nothing is read or changed here. Every policy has the contract's three stages; a
clock paused before its deadline has none under either, and is counted open but overdue under neither.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from .sla_clock import Extension, Pause, due_at
from .sla_policy import SlaPolicy

MEASURES = ("open", "overdue_now", "overdue_under_new", "newly_overdue", "no_longer_overdue")


@dataclass(frozen=True)
class OpenClock:
    stage: str
    priority: bool
    started_at: datetime
    pauses: tuple[Pause, ...]
    district: str
    extensions: tuple[Extension, ...] = ()


def compare(clocks: list[OpenClock], current: SlaPolicy, new: SlaPolicy, now: datetime) -> dict:
    """The contract's JSON: {"stages": {stage: {measure: n}}, "by_district": {district: {stage: {...}}}}."""
    stages: dict[str, dict[str, int]] = {s: dict.fromkeys(MEASURES, 0) for s in current.stages}
    by_district: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    calendars = {id(current): current.make_calendar(), id(new): new.make_calendar()}  # built once, not per clock
    for clock in clocks:
        before, after = (_overdue(_due(clock, policy, calendars[id(policy)]), now) for policy in (current, new))
        for counts in (stages.setdefault(clock.stage, dict.fromkeys(MEASURES, 0)),
                       by_district[clock.district].setdefault(clock.stage, dict.fromkeys(MEASURES, 0))):
            counts["open"] += 1
            counts["overdue_now"] += before
            counts["overdue_under_new"] += after
            counts["newly_overdue"] += after and not before
            counts["no_longer_overdue"] += before and not after
    return {"stages": stages, "by_district": dict(sorted(by_district.items()))}


def _due(clock: OpenClock, policy: SlaPolicy, calendar) -> datetime | None:
    return due_at(clock.started_at, policy.allowance_for(clock.stage, clock.priority), clock.pauses,
                  calendar, policy.counting, extensions=clock.extensions)


def _overdue(due: datetime | None, now: datetime) -> bool:
    return due is not None and due <= now
