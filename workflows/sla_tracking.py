"""Which SLA clocks a case's changes start, pause, resume and stop, and what the scanner raises.

Pure domain code over `StageClock` values (one per case and stage, stored by the engine as a row):
the flow calls `SlaTracker.follow` with each transition, and the scanner calls `SlaTracker.due_alert`
with the time it scans at. Times come from the changes (`received_at`, `issued_at`), never a clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .sla_clock import Extension, Pause, compute_clock, elapsed
from .sla_policy import Allowance, SlaPolicy, load_policy

PAUSES_ON = "case.information_requested"
RESUMES_ON = "case.information_provided"


@dataclass
class StageClock:
    """One stage's clock for one case; `dirty` marks what a transaction must write back."""

    stage: str
    priority: bool
    allowance: Allowance
    started_at: datetime
    pauses: list[Pause] = field(default_factory=list)
    # Extra time granted by extend_clock, kept so that every recompute (pause, resume, priority, policy) keeps it.
    extensions: list[Extension] = field(default_factory=list)
    # The stored policy version its times were last computed under (None: the file's or the shipped policy).
    policy_version: int | None = None
    due_at: datetime | None = None
    warning_at: datetime | None = None
    stopped_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    id: int | None = None
    dirty: bool = False

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1].resumed_at is None

    @property
    def next_check_at(self) -> datetime | None:
        """The next moment the scanner must look at this clock; None when nothing more can fire."""
        # A pause that began after the deadline leaves due_at set: the overdue clock still breaches.
        if not self.running or self.breached_at is not None or self.due_at is None:
            return None
        if self.warned_at is None and self.warning_at is not None and self.warning_at < self.due_at:
            return self.warning_at
        return self.due_at


@dataclass(frozen=True)
class Alert:
    """An SLA event to raise: `kind` is "warning" or "breached"."""

    kind: str
    stage: str
    occurred_at: datetime
    data: dict

    @property
    def event_type(self) -> str:
        return f"sla.{self.kind}.{self.stage}"


class SlaTracker:
    def __init__(self, policy: SlaPolicy | None = None, version: int | None = None) -> None:
        self.use(policy or load_policy(), version)

    def use(self, policy: SlaPolicy, version: int | None = None) -> None:
        """Put `policy` in force from the next change on (`earlyhelp policy apply`; the workers' pick-up).
        `version`: the stored policy's version, None for the file's or the shipped one."""
        self.calendar = policy.make_calendar()
        self.policy, self.version = policy, version

    def rebase(self, clock: StageClock) -> bool:
        """Recompute a running clock under this tracker's policy (apply): its allowance and times; warned_at and
        breached_at stand. True when something changed."""
        before = (clock.allowance, clock.due_at, clock.warning_at)
        clock.allowance = self.policy.allowance_for(clock.stage, clock.priority)
        self._recompute(clock)  # stamps this tracker's version on the clock, changed or not
        clock.dirty = (clock.allowance, clock.due_at, clock.warning_at) != before
        return clock.dirty

    def extend(self, clock: StageClock, extension: Extension) -> None:
        """Grant a running clock extra time (extend_clock): its deadline and warning move; a warning or breach
        already raised stands."""
        if not clock.running:
            raise ValueError(f"the {clock.stage} clock has stopped; only a running clock is extended")
        clock.extensions.append(Extension(extension.amount, extension.unit))
        self._recompute(clock)

    # -- transitions move clocks -----------------------------------------------------------------
    def follow(self, clocks: dict[str, StageClock], priority: bool, change) -> None:
        """Apply one change (a workflows.case_flow.Change) to the case's clocks, in place."""
        at, event_type = change.occurred_at, change.event_type
        for stage in self.policy.stages_stopped_by(event_type):
            clock = clocks.get(stage)
            if clock is not None and clock.running:
                if clock.priority != priority:  # a priority set at triage moves the deadline it is judged by
                    clock.priority, clock.allowance = priority, self.policy.allowance_for(stage, priority)
                    self._recompute(clock)
                clock.stopped_at, clock.dirty = at, True
        if event_type == PAUSES_ON:
            for clock in clocks.values():
                if clock.running and not clock.paused:
                    clock.pauses.append(Pause(at, None))
                    self._recompute(clock)
        elif event_type == RESUMES_ON:
            for clock in clocks.values():
                if clock.running and clock.paused:
                    clock.pauses[-1] = Pause(clock.pauses[-1].paused_at, max(at, clock.pauses[-1].paused_at))
                    self._recompute(clock)
        for stage in self.policy.stages_started_by(event_type):
            if stage not in clocks:
                clock = StageClock(stage, priority, self.policy.allowance_for(stage, priority), at)
                self._recompute(clock)
                clocks[stage] = clock

    def _recompute(self, clock: StageClock) -> None:
        times = compute_clock(clock.stage, clock.started_at, clock.allowance, clock.pauses, self.calendar,
                              self.policy.warning_share, self.policy.counting, clock.extensions)
        clock.due_at, clock.warning_at, clock.dirty = times.due_at, times.warning_at, True
        clock.policy_version = self.version

    # -- the scanner's judgement -----------------------------------------------------------------
    def due_alert(self, clock: StageClock, now: datetime) -> Alert | None:
        """The one alert due on `clock` at `now`, if any, marking it raised.

        A clock found past its deadline is breached without a warning first: a warning after the
        deadline would tell nobody anything.
        """
        check = clock.next_check_at
        if check is None or check > now:
            return None
        if now >= clock.due_at:
            clock.breached_at, kind, at = now, "breached", clock.due_at
        else:
            clock.warned_at, kind, at = now, "warning", clock.warning_at
        clock.dirty = True
        return Alert(kind, clock.stage, at, self.alert_data(clock, now))

    def alert_data(self, clock: StageClock, now: datetime) -> dict:
        unit = clock.allowance.unit
        return {
            "stage": clock.stage,
            "allowance": {"amount": clock.allowance.amount, "unit": unit},
            "due_at": clock.due_at,
            "elapsed": {"amount": round(elapsed(clock.started_at, now, unit, clock.pauses, self.calendar), 3),
                        "unit": unit},
        }
