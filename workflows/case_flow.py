"""What each notification and command does to a case: the transitions fired and the changes to record.

A notification opens a case (`CaseFlow.open`); a command is looked up in the command table
(workflows/commands.py) and its domain function applied (`CaseFlow.apply`).
Pure domain code: it takes validated messages (earlyhelp.schemas) and returns `Change`s; the engine
stores each as a history row and an outbox event in one transaction. No I/O, no clock: every time
used comes from the messages themselves (`received_at`, `issued_at`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from earlyhelp.schemas import MessageRefused

from .checks import check_notification
from .senders import OPEN, SendersPolicy
from .states import ALLOCATED, AWAITING_INFORMATION, CLOSED, STEPPED_DOWN, CaseState


@dataclass
class Case(CaseState):
    """A case's facts that decide its flow and route its events; no personal data."""

    case_id: str = ""
    notification_id: str = ""
    version: int = 0
    kind: str = ""
    source: str = ""
    priority: bool = False
    district: str | None = None
    service: str | None = None
    team: str | None = None
    worker_id: str | None = None
    school_urn: str | None = None
    share_with_school: bool = False
    received_at: datetime | None = None
    # The field paths the open request for information named: all that provide_information may set.
    requested_paths: list[str] | None = None
    # The school that was sent school.<urn>.allocated: only it hears of the step-down or close.
    school_informed_urn: str | None = None
    # When the case's latest change happened (occurred_at): a command issued before it is out of order.
    last_occurred_at: datetime | None = None
    # The case's SLA clocks by stage (workflows.sla_tracking.StageClock), loaded with the case.
    clocks: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One thing that happened to a case: a transition (history row + event) or a notice to its school."""

    event_type: str
    sequence: int
    state: str
    previous_state: str | None
    occurred_at: datetime
    caused_by: str | None
    actor: dict | None = None
    data: dict = field(default_factory=dict)
    is_transition: bool = True
    # Kept in the history row beside `data`, never in the event (extend_clock's reason).
    history_only: dict = field(default_factory=dict)


class CommandOutOfOrder(Exception):
    """A command issued before the case's latest change happened: refused like a state that does not allow it."""

    def __init__(self, issued_at: datetime, last_occurred_at: datetime) -> None:
        self.issued_at, self.last_occurred_at = issued_at, last_occurred_at
        super().__init__(f"issued at {issued_at.isoformat()}, before the case's latest change at "
                         f"{last_occurred_at.isoformat()}")


@dataclass
class Outcome:
    changes: list[Change]
    notification: object  # the case's details after the command (changed only by provide_information)


class CaseFlow:
    """Opens cases from notifications and applies commands to them, through one shared CaseMachine."""

    def __init__(self, machine=None, sla=None, senders: SendersPolicy = OPEN, commands: dict | None = None) -> None:
        from .case_machine import CaseMachine  # the machine is drawn from the table, which names this module's types

        self.machine = machine or CaseMachine(commands)
        self.commands = self.machine.commands  # name -> CommandSpec (workflows/commands.py)
        self.sla = sla  # a workflows.sla_tracking.SlaTracker; None runs no clocks
        self.senders = senders  # who may send what; the handlers ask it before the flow runs

    def _follow_clocks(self, case: Case, changes: list[Change]) -> list[Change]:
        if self.sla is not None:
            for change in changes:
                if change.is_transition:
                    self.sla.follow(case.clocks, case.priority, change)
        return changes

    # -- intake ---------------------------------------------------------------------------------
    def open(self, case_id: str, notification, previous_case_ids: list[str] | tuple = ()) -> tuple[Case, list[Change]]:
        """A new case from `notification`; `previous_case_ids`: the child's cases closed within the 12 months
        before it was received (a re-referral), named in case.received's data."""
        urn = school_of(notification)
        consent = notification.consent
        case = Case(
            case_id=case_id, notification_id=notification.notification_id, kind=word(notification.kind),
            source=word(notification.referrer.source), priority=bool(notification.priority),
            school_urn=urn, share_with_school=bool(consent and consent.share_with_school),
            received_at=notification.received_at,
        )
        verdict = check_notification(notification)
        at, cause = notification.received_at, notification.notification_id
        received = {"needs_review": list(verdict.needs_review)}
        if previous_case_ids:
            received["previous_case_ids"] = list(previous_case_ids)
        changes = [self._record(case, "case.received", None, at, cause, None, received)]
        changes += self.run_checks(case, verdict, at, cause)
        return case, self._follow_clocks(case, changes)

    def run_checks(self, case: Case, verdict, at: datetime, cause: str, actor: dict | None = None) -> list[Change]:
        """The engine's own move after (re)checking a case in `received` (docs/contract.md, "The engine's checks")."""
        if verdict.needs_review:
            return []  # a person decides: `check` to accept, or `close`
        if verdict.missing:
            case.requested_paths = list(verdict.missing)
            return [self._transition(case, "request_information", at, cause, actor,
                                     {"missing": list(verdict.missing), "by": "engine"})]
        return [self._transition(case, "check", at, cause, actor, {"by": "engine"})]

    def link(self, case: Case, notification, matched_on: list[str]) -> Change:
        """`notification` (for the child `case` already serves, matched on the identifiers named) joins the open
        case: a change in its history, the state and SLA clocks untouched. It does not move the case's latest
        change (last_occurred_at): a link is no decision on the case, so it puts no command out of order."""
        case.version += 1
        data = {"linked_notification_id": notification.notification_id,
                "source": word(notification.referrer.source), "kind": word(notification.kind),
                "matched_on": list(matched_on)}
        return Change("case.notification_linked", case.version, case.state, case.state, notification.received_at,
                      notification.notification_id, None, data)

    # -- commands -------------------------------------------------------------------------------
    def apply(self, case: Case, command, notification) -> Outcome:
        """Apply a validated command by its entry in the command table; raises TransitionNotAllowed when the
        state does not allow it, CommandOutOfOrder when it was issued before the case's latest change happened,
        and MessageRefused (unknown_command) when the table does not hold it. All before any fact changes."""
        spec = self.commands.get(command.name)
        if spec is None:
            raise MessageRefused(
                f"'{command.name}' is not a command this engine handles; the command was not applied",
                ["routing_key: not a command of the engine's command table"], code="unknown_command")
        self.machine.require(case, command.name)
        if case.last_occurred_at is not None and command.issued_at < case.last_occurred_at:
            raise CommandOutOfOrder(command.issued_at, case.last_occurred_at)
        outcome = spec.apply(self, case, command, notification)
        self._follow_clocks(case, outcome.changes)
        return outcome

    def move(self, case: Case, command, data: dict, history_only: dict | None = None) -> Change:
        """Fire `command`'s transition on `case` and record its table entry's event with `data` (and, in the
        history only, `history_only`)."""
        change = self._transition(case, command.name, command.issued_at, command.command_id, actor_of(command),
                                  data, self.commands[command.name].event_of(command))
        return replace(change, history_only=history_only) if history_only else change

    # -- recording ------------------------------------------------------------------------------
    def _transition(self, case, trigger, at, cause, actor, data, event_type: str | None = None) -> Change:
        previous = case.state
        self.machine.fire(case, trigger)
        return self._record(case, event_type or self.commands[trigger].event, previous, at, cause, actor, data)

    @staticmethod
    def _record(case, event_type, previous, at, cause, actor, data) -> Change:
        case.version += 1
        if case.last_occurred_at is None or at > case.last_occurred_at:
            case.last_occurred_at = at
        return Change(event_type, case.version, case.state, previous, at, cause, actor, data)

    @staticmethod
    def tell_school(case: Case, change: Change, notification, extra: dict) -> list[Change]:
        """School events go only where the family agrees (now) to share with the school and the school is
        known; a step-down or close only to the school that was told of the allocation, so a case closed
        before allocation tells no school that someone else referred its pupil."""
        if not (case.share_with_school and case.school_urn):
            return []
        if change.event_type != "case.allocated" and case.school_informed_urn != case.school_urn:
            return []
        child = notification.child
        data = {"school_urn": case.school_urn,
                "child": {"given_name": child.given_name, "family_name": child.family_name}, **extra}
        school_type = "school." + change.event_type.split(".", 1)[1]
        return [Change(school_type, change.sequence, change.state, change.previous_state, change.occurred_at,
                       change.caused_by, change.actor, data, is_transition=False)]


def school_of(notification) -> str | None:
    """The child's school: the child's own URN, else the referring school's when a school referred."""
    urn = getattr(notification.child, "school_urn", None)
    if not urn and word(notification.referrer.source) == "school":
        urn = getattr(notification.referrer, "school_urn", None)
    return urn or None


def allocated_child(notification) -> dict:
    child = notification.child.model_dump(mode="json", exclude_none=True)
    keep = ("given_name", "family_name", "date_of_birth", "expected_date_of_birth", "postcode",
            "school_urn", "nhs_number", "upn")
    return {k: child[k] for k in keep if k in child}


def notifier_contact(notification) -> dict:
    referrer = notification.referrer.model_dump(mode="json", exclude_none=True)
    keep = ("source", "organisation", "contact_name", "contact_email", "contact_phone")
    return {k: referrer[k] for k in keep if k in referrer}


def actor_of(command) -> dict:
    return command.actor.model_dump(mode="json")


def word(value) -> str:
    return getattr(value, "value", value)


__all__ = ["Case", "CaseFlow", "Change", "CommandOutOfOrder", "Outcome", "AWAITING_INFORMATION", "ALLOCATED", "CLOSED", "STEPPED_DOWN"]
