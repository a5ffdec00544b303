"""What each notification and command does to a case: the transitions fired and the changes to record.

Pure domain code: it takes validated messages (earlyhelp.schemas) and returns `Change`s; the engine
stores each as a history row and an outbox event in one transaction. No I/O, no clock: every time
used comes from the messages themselves (`received_at`, `issued_at`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .case_machine import (
    ALLOCATED, AWAITING_INFORMATION, CLOSED, RECEIVED, STEPPED_DOWN, CaseMachine, CaseState,
)
from .checks import check_notification
from .senders import OPEN, SendersPolicy


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

    def __init__(self, machine: CaseMachine | None = None, sla=None, senders: SendersPolicy = OPEN) -> None:
        self.machine = machine or CaseMachine()
        self.sla = sla  # a workflows.sla_tracking.SlaTracker; None runs no clocks
        self.senders = senders  # who may send what; the handlers ask it before the flow runs

    def _follow_clocks(self, case: Case, changes: list[Change]) -> list[Change]:
        if self.sla is not None:
            for change in changes:
                if change.is_transition:
                    self.sla.follow(case.clocks, case.priority, change)
        return changes

    # -- intake ---------------------------------------------------------------------------------
    def open(self, case_id: str, notification) -> tuple[Case, list[Change]]:
        urn = school_of(notification)
        consent = notification.consent
        case = Case(
            case_id=case_id, notification_id=notification.notification_id, kind=_word(notification.kind),
            source=_word(notification.referrer.source), priority=bool(notification.priority),
            school_urn=urn, share_with_school=bool(consent and consent.share_with_school),
            received_at=notification.received_at,
        )
        verdict = check_notification(notification)
        at, cause = notification.received_at, notification.notification_id
        changes = [self._record(case, "case.received", None, at, cause, None,
                                {"needs_review": list(verdict.needs_review)})]
        changes += self._run_checks(case, verdict, at, cause)
        return case, self._follow_clocks(case, changes)

    def _run_checks(self, case: Case, verdict, at: datetime, cause: str, actor: dict | None = None) -> list[Change]:
        """The engine's own move after (re)checking a case in `received` (docs/contract.md, "The engine's checks")."""
        if verdict.needs_review:
            return []  # a person decides: `check` to accept, or `close`
        if verdict.missing:
            case.requested_paths = list(verdict.missing)
            return [self._transition(case, "request_information", "case.information_requested", at, cause,
                                     actor, {"missing": list(verdict.missing), "by": "engine"})]
        return [self._transition(case, "check", "case.checked", at, cause, actor, {"by": "engine"})]

    # -- commands -------------------------------------------------------------------------------
    def apply(self, case: Case, command, notification) -> Outcome:
        """Apply a validated command; raises TransitionNotAllowed when the state does not allow it and
        CommandOutOfOrder when it was issued before the case's latest change happened. Both before any fact
        of the case changes."""
        self.machine.require(case, command.name)
        if case.last_occurred_at is not None and command.issued_at < case.last_occurred_at:
            raise CommandOutOfOrder(command.issued_at, case.last_occurred_at)
        outcome = self._apply(case, command, notification)
        self._follow_clocks(case, outcome.changes)
        return outcome

    def _apply(self, case: Case, command, notification) -> Outcome:
        name = command.name
        at, cause, actor = command.issued_at, command.command_id, _actor(command)
        move = lambda event_type, data: self._transition(case, name, event_type, at, cause, actor, data)  # noqa: E731

        if name == "check":
            return Outcome([move("case.checked", {"by": "staff"})], notification)
        if name == "request_information":
            case.requested_paths = list(command.missing)
            return Outcome([move("case.information_requested", {"missing": list(command.missing), "by": "staff"})],
                           notification)
        if name == "provide_information":
            return self._provide_information(case, command, notification, move)
        if name == "record_consent":
            return self._record_consent(case, command, notification, move)
        if name == "triage":
            case.service, case.district = _word(command.service), command.district
            if command.priority is not None:
                case.priority = bool(command.priority)
            data = {"service": case.service, "district": case.district, "priority": case.priority}
            return Outcome([move("case.triaged", data)], notification)
        if name == "allocate":
            case.team, case.worker_id = command.team, command.worker_id
            change = move("case.allocated", {"team": case.team, "worker_id": case.worker_id,
                                             "child": allocated_child(notification),
                                             "notifier": notifier_contact(notification)})
            told = self._tell_school(case, change, notification, {"team": case.team})
            if told:
                case.school_informed_urn = case.school_urn
            return Outcome([change, *told], notification)
        if name == "assess":
            data = {"outcome": command.outcome, "has_plan": bool(getattr(command, "plan_summary", None))}
            return Outcome([move("case.assessed", data)], notification)
        if name == "step_down":
            change = move("case.stepped_down", {"to": command.to})
            return Outcome([change, *self._tell_school(case, change, notification, {"to": command.to})],
                           notification)
        if name == "close":
            reason = _word(command.reason)
            case.requested_paths = None
            change = move("case.closed", {"reason": reason})
            return Outcome([change, *self._tell_school(case, change, notification, {"reason": reason})],
                           notification)
        raise ValueError(f"no flow for command {name!r}")

    def _provide_information(self, case: Case, command, notification, move) -> Outcome:
        from earlyhelp.schemas import MessageRefused, apply_provided_fields  # contract helpers: pure

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
        changes = [move("case.information_provided", provided)]
        if verdict is not None:
            changes += self._run_checks(case, verdict, command.issued_at, command.command_id, _actor(command))
        return Outcome(changes, updated)

    def _record_consent(self, case: Case, command, notification, move) -> Outcome:
        """What the family now agrees to, on the case (it routes school events) and in its details."""
        from earlyhelp.schemas import Notification
        from earlyhelp.schemas.base import canonical_json

        data = notification.model_dump(mode="json", exclude_none=True)
        consent = data.setdefault("consent", {})
        consent["share_with_school"] = command.share_with_school
        if command.family_consent is not None:
            consent["family_consents"] = command.family_consent
        updated = Notification.model_validate_json(canonical_json(data), context={"stored": True})
        case.share_with_school = command.share_with_school
        change = move("case.consent_changed", {"share_with_school": command.share_with_school,
                                               "family_consent": command.family_consent})
        return Outcome([change], updated)

    # -- recording ------------------------------------------------------------------------------
    def _transition(self, case, trigger, event_type, at, cause, actor, data) -> Change:
        previous = case.state
        self.machine.fire(case, trigger)
        return self._record(case, event_type, previous, at, cause, actor, data)

    @staticmethod
    def _record(case, event_type, previous, at, cause, actor, data) -> Change:
        case.version += 1
        if case.last_occurred_at is None or at > case.last_occurred_at:
            case.last_occurred_at = at
        return Change(event_type, case.version, case.state, previous, at, cause, actor, data)

    @staticmethod
    def _tell_school(case: Case, change: Change, notification, extra: dict) -> list[Change]:
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
    if not urn and _word(notification.referrer.source) == "school":
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


def _actor(command) -> dict:
    return command.actor.model_dump(mode="json")


def _word(value) -> str:
    return getattr(value, "value", value)


__all__ = ["Case", "CaseFlow", "Change", "CommandOutOfOrder", "Outcome", "AWAITING_INFORMATION", "ALLOCATED", "CLOSED", "STEPPED_DOWN"]
