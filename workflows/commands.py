"""The command table: one entry per command, from which the rest of the engine follows.

Each `CommandSpec` names the command's model (schemas/commands.py), the states it is allowed from, the
state it goes to (a state, UNCHANGED, or RETURN_STATE), the event it records, whether it needs the case's
details (the stored notification), and its domain function. From this table follow the state machine's
transitions (workflows/case_machine.py) and the README diagram, the flow's dispatch (workflows/case_flow.py),
which commands the engine routes and which of them load the case's details (consumers/), the CLI's
`earlyhelp command`, and the generated contract (schemas/generated/, docs/contract.md).

Adding a command (say `reopen`) takes:
1. its model in schemas/commands.py (a `Command` subclass with `name`; it joins COMMAND_MODELS by itself),
   and its event model in schemas/events.py if it records a new event;
2. its domain function below and its entry in COMMANDS;
3. its tests; then `earlyhelp schemas` and `earlyhelp diagram` to regenerate the contract and README.
A domain function takes (flow, case, command, notification) and returns an Outcome; `flow.move` fires the
command's transition and records the entry's event. A command the table does not hold is refused as
`invalid` (unknown_command), never a handling fault.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from earlyhelp.schemas import MessageRefused, Notification, apply_provided_fields
from earlyhelp.schemas.base import canonical_json
from earlyhelp.schemas.commands import (
    AllocateCommand, AssessCommand, CheckCommand, CloseCommand, Command, ExtendClockCommand,
    ProvideInformationCommand, RecordConsentCommand, RequestInformationCommand, StepDownCommand, TriageCommand,
)

from .case_flow import Outcome, actor_of, allocated_child, notifier_contact, school_of, word
from .checks import check_notification
from .sla_clock import Extension
from .sla_policy import STAGES
from .states import (
    ALLOCATED, ASSESSED, AWAITING_INFORMATION, CHECKED, CLOSED, INTERRUPTIBLE, OPEN_STATES, RECEIVED,
    RETURN_STATE, STEPPED_DOWN, TRIAGED, UNCHANGED,
)

if TYPE_CHECKING:
    from .case_flow import Case, CaseFlow

DomainFunction = Callable[["CaseFlow", "Case", Command, "Notification | None"], Outcome]


@dataclass(frozen=True)
class CommandSpec:
    """One command: everything the engine needs to know of it, in one place."""

    model: type[Command]
    allowed_from: tuple[str, ...]
    goes_to: str | None  # a state, UNCHANGED (None) or RETURN_STATE
    event: str  # may name the command's stage: "sla.extended.<stage>"
    needs_details: bool
    apply: DomainFunction

    @property
    def name(self) -> str:
        return self.model.name

    def event_of(self, command: Command) -> str:
        """The event type this command records (its stage filled in, where the event names one)."""
        return self.event.replace(STAGE, command.stage) if STAGE in self.event else self.event

    @property
    def events(self) -> tuple[str, ...]:
        """Every event type the entry can record."""
        return tuple(self.event.replace(STAGE, s) for s in STAGES) if STAGE in self.event else (self.event,)


STAGE = "<stage>"


def command_table(*specs: CommandSpec) -> dict[str, CommandSpec]:
    """A table keyed by command name, in the order given (the order of the contract's tables)."""
    table = {spec.name: spec for spec in specs}
    if len(table) != len(specs):
        raise ValueError("a command is declared twice")
    return table


# -- the domain functions, one per command ---------------------------------------------------------

def check(flow: CaseFlow, case: Case, command: CheckCommand, notification) -> Outcome:
    return Outcome([flow.move(case, command, {"by": "staff"})], notification)


def request_information(flow: CaseFlow, case: Case, command: RequestInformationCommand, notification) -> Outcome:
    case.requested_paths = list(command.missing)
    return Outcome([flow.move(case, command, {"missing": list(command.missing), "by": "staff"})], notification)


def provide_information(flow: CaseFlow, case: Case, command: ProvideInformationCommand, notification) -> Outcome:
    """Only the paths the open request named; back in received, the engine's checks run again."""
    unrequested = sorted(set(command.fields) - set(case.requested_paths or ()))
    if unrequested:
        raise MessageRefused(
            f"provide_information may set only the paths the open request named "
            f"({', '.join(case.requested_paths or ()) or 'none'}); {', '.join(unrequested)} "
            "was not requested: send request_information for it first.",
            [f"fields.{path}: not requested" for path in unrequested], code="unrequested_path")
    updated = apply_provided_fields(notification, dict(command.fields), now=command.issued_at)
    case.requested_paths = None
    case.school_urn = school_of(updated)
    case.share_with_school = bool(updated.consent and updated.consent.share_with_school)
    provided = {"fields": sorted(command.fields)}
    verdict = check_notification(updated) if case.return_state == RECEIVED else None
    if verdict is not None and verdict.needs_review:
        provided["needs_review"] = list(verdict.needs_review)  # back in received: say why it waits
    changes = [flow.move(case, command, provided)]
    if verdict is not None:
        changes += flow.run_checks(case, verdict, command.issued_at, command.command_id, actor_of(command))
    return Outcome(changes, updated)


def record_consent(flow: CaseFlow, case: Case, command: RecordConsentCommand, notification) -> Outcome:
    """What the family now agrees to, on the case (it routes school events) and in its details."""
    data = notification.model_dump(mode="json", exclude_none=True)
    consent = data.setdefault("consent", {})
    consent["share_with_school"] = command.share_with_school
    if command.family_consent is not None:
        consent["family_consents"] = command.family_consent
    updated = Notification.model_validate_json(canonical_json(data), context={"stored": True})
    case.share_with_school = command.share_with_school
    change = flow.move(case, command, {"share_with_school": command.share_with_school,
                                       "family_consent": command.family_consent})
    return Outcome([change], updated)


def extend_clock(flow: CaseFlow, case: Case, command: ExtendClockCommand, notification) -> Outcome:
    """A manager grants a running stage's clock extra time: its deadline and warning move; the state, and a
    warning or breach already published, stand. The reason is kept in the history, never in the event."""
    from .case_machine import ClockNotRunning  # the machine is drawn from this table: imported when used

    clock = case.clocks.get(command.stage)
    if flow.sla is None or clock is None or not clock.running:
        why = ("has not started" if clock is None else
               f"stopped at {clock.stopped_at.isoformat()}" if clock.stopped_at is not None else "is not tracked")
        raise ClockNotRunning(command.name, case.state, command.stage, why)
    previous, previous_warning = clock.due_at, clock.warning_at
    flow.sla.extend(clock, Extension(command.extra.amount, command.extra.unit))
    data = {"previous_due_at": _iso(previous), "due_at": _iso(clock.due_at)}
    history = {"stage": command.stage, "extra": command.extra.model_dump(mode="json"), "reason": command.reason,
               "previous_warning_at": _iso(previous_warning), "warning_at": _iso(clock.warning_at)}
    return Outcome([flow.move(case, command, data, history_only=history)], notification)


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def triage(flow: CaseFlow, case: Case, command: TriageCommand, notification) -> Outcome:
    case.service, case.district = word(command.service), command.district
    if command.priority is not None:
        case.priority = bool(command.priority)
    data = {"service": case.service, "district": case.district, "priority": case.priority}
    return Outcome([flow.move(case, command, data)], notification)


def allocate(flow: CaseFlow, case: Case, command: AllocateCommand, notification) -> Outcome:
    """The allocated team gets the child's and notifier's details; the school hears only with consent."""
    case.team, case.worker_id = command.team, command.worker_id
    change = flow.move(case, command, {"team": case.team, "worker_id": case.worker_id,
                                       "child": allocated_child(notification),
                                       "notifier": notifier_contact(notification)})
    told = flow.tell_school(case, change, notification, {"team": case.team})
    if told:
        case.school_informed_urn = case.school_urn
    return Outcome([change, *told], notification)


def assess(flow: CaseFlow, case: Case, command: AssessCommand, notification) -> Outcome:
    data = {"outcome": command.outcome, "has_plan": bool(getattr(command, "plan_summary", None))}
    return Outcome([flow.move(case, command, data)], notification)


def step_down(flow: CaseFlow, case: Case, command: StepDownCommand, notification) -> Outcome:
    change = flow.move(case, command, {"to": command.to})
    return Outcome([change, *flow.tell_school(case, change, notification, {"to": command.to})], notification)


def close(flow: CaseFlow, case: Case, command: CloseCommand, notification) -> Outcome:
    reason = word(command.reason)
    case.requested_paths = None
    change = flow.move(case, command, {"reason": reason})
    return Outcome([change, *flow.tell_school(case, change, notification, {"reason": reason})], notification)


# -- the table ---------------------------------------------------------------------------------------

COMMANDS: dict[str, CommandSpec] = command_table(
    CommandSpec(CheckCommand, (RECEIVED,), CHECKED, "case.checked", False, check),
    CommandSpec(RequestInformationCommand, INTERRUPTIBLE, AWAITING_INFORMATION, "case.information_requested",
                False, request_information),
    CommandSpec(ProvideInformationCommand, (AWAITING_INFORMATION,), RETURN_STATE, "case.information_provided",
                True, provide_information),
    CommandSpec(TriageCommand, (CHECKED,), TRIAGED, "case.triaged", False, triage),
    CommandSpec(AllocateCommand, (TRIAGED,), ALLOCATED, "case.allocated", True, allocate),
    CommandSpec(AssessCommand, (ALLOCATED,), ASSESSED, "case.assessed", False, assess),
    CommandSpec(StepDownCommand, (ASSESSED,), STEPPED_DOWN, "case.stepped_down", True, step_down),
    CommandSpec(CloseCommand, OPEN_STATES, CLOSED, "case.closed", True, close),
    CommandSpec(RecordConsentCommand, OPEN_STATES, UNCHANGED, "case.consent_changed", True, record_consent),
    CommandSpec(ExtendClockCommand, OPEN_STATES, UNCHANGED, f"sla.extended.{STAGE}", False, extend_clock),
)
# The events the engine records of its own accord (a notification opens a case with case.received, or joins
# the open case of its child with case.notification_linked; its checks fire `check` or `request_information`,
# recording those commands' events).
ENGINE_EVENTS = ("case.received", "case.notification_linked")


def command_models(commands: dict[str, CommandSpec] = COMMANDS) -> dict[str, type[Command]]:
    """Routing key case.<name> -> the model a delivery is validated into: the commands this table handles."""
    return {name: spec.model for name, spec in commands.items()}
