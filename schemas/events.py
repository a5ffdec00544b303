"""Event models (engine -> earlyhelp.events), EVENT_MODELS by event_type, and serialize_event."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, create_model, model_serializer, model_validator

from .base import OutboundModel, UtcDatetime
from .base import unchecked_text as text
from .commands import CloseReason, Service
from .errors import InvalidEvent, safe_errors
from .notification import Kind, Source

CaseState = Literal[
    "received", "checked", "awaiting_information", "triaged", "allocated", "assessed", "stepped_down", "closed"
]
Stage = Literal["triage", "allocation", "assessment"]
Unit = Literal["calendar_days", "working_days"]
By = Literal["engine", "staff"]

CASE_STATES: tuple[str, ...] = get_args(CaseState)
SLA_STAGES: tuple[str, ...] = get_args(Stage)

# Outbound identifiers are copied from validated input; checking their check digits again would only
# let a later rule change break publishing of stored events. For the same reason outbound text is not
# checked for control characters (inbound text is): a case stored before that rule must still publish.
Id = text(200)
Name = text(200)
ShortText = text(100)
Email = text(254)
Phone = text(40)
Postcode = text(16)
Code = text(32)
Path = text(200)


class EventActor(OutboundModel):
    """Who sent the command that caused the change."""

    id: Id
    role: ShortText


class Envelope(OutboundModel):
    """Fields of every event. `event_id` is also the AMQP message_id; `event_type` is the routing key without
    its variable segments."""

    schema_version: Literal[1]
    event_id: Id
    event_type: str
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime


class CaseEnvelope(Envelope):
    """Fields of case, SLA and school events: order a case's events by `sequence` (1 at case.received)."""

    case_id: Id
    notification_id: Id
    state: CaseState
    sequence: int = Field(ge=1)
    source: Source
    kind: Kind
    priority: bool
    district: Name | None = None
    service: Service | None = None
    previous_state: CaseState | None = None
    actor: EventActor | None = None
    caused_by: Id | None = None


# ---- data of case events -------------------------------------------------------------------------


class ChangeData(OutboundModel):
    """Base of every case event's data. `recorded_late_hours`: set when the change was recorded more than
    24 hours after it happened (occurred_at); the report counts these."""

    recorded_late_hours: float | None = Field(default=None, ge=0)


class ReceivedData(ChangeData):
    needs_review: list[text(500)]
    # The child's cases closed within the 12 months before this notification's received_at (a re-referral,
    # matched through the keyed identifier hashes); absent when there are none.
    previous_case_ids: list[Id] | None = None


# The identifiers a notification can match an open case on, by name (never their values).
MatchedOn = Literal["nhs_number", "upn", "name_dob"]


class NotificationLinkedData(ChangeData):
    """A notification for a child this open case already serves joined it instead of opening a second case:
    its id, source and kind, and which identifiers matched (by name). The case's clocks are untouched."""

    linked_notification_id: Id
    source: Source
    kind: Kind
    matched_on: list[MatchedOn] = Field(min_length=1)


class CheckedData(ChangeData):
    by: By


class InformationRequestedData(ChangeData):
    missing: list[Path]
    by: By


class InformationProvidedData(ChangeData):
    """Only the paths: the values are personal data."""

    fields: list[Path]
    # Set when the case went back to `received` and the re-run checks found something for a person
    # to decide (as on case.received); absent otherwise.
    needs_review: list[str] | None = None


class TriagedData(ChangeData):
    service: Service
    district: Name
    priority: bool


class AllocatedChild(OutboundModel):
    given_name: Name
    family_name: Name
    date_of_birth: date | None = None
    expected_date_of_birth: date | None = None
    postcode: Postcode | None = None
    school_urn: Code | None = None
    nhs_number: Code | None = None
    upn: Code | None = None


class Notifier(OutboundModel):
    source: Source
    organisation: Name | None = None
    contact_name: Name | None = None
    contact_email: Email | None = None
    contact_phone: Phone | None = None


class AllocatedData(ChangeData):
    """The one case event with personal data: the allocated team needs the child and the notifier's contact."""

    team: Name
    worker_id: Id
    child: AllocatedChild
    notifier: Notifier


class AssessedData(ChangeData):
    outcome: ShortText
    has_plan: bool


class SteppedDownData(ChangeData):
    to: text(64)


class ClosedData(ChangeData):
    reason: CloseReason


class ConsentChangedData(ChangeData):
    """What the family now agrees to (record_consent); `family_consent` is null when the command left it as it was."""

    share_with_school: bool
    family_consent: bool | None = None

    @model_serializer(mode="wrap")
    def _keep_null_consent(self, handler):
        # Events are serialised without None values; the contract shows family_consent as null here.
        data = handler(self)
        data.setdefault("family_consent", None)
        return data


class Amount(OutboundModel):
    amount: int = Field(ge=0)
    unit: Unit


class Elapsed(OutboundModel):
    amount: float = Field(ge=0)
    unit: Unit


class SlaData(OutboundModel):
    stage: Stage
    allowance: Amount
    due_at: UtcDatetime
    elapsed: Elapsed


class SchoolChild(OutboundModel):
    """The school knows the child: its name only."""

    given_name: Name
    family_name: Name


class SchoolAllocatedData(OutboundModel):
    school_urn: Code
    child: SchoolChild
    team: Name


class SchoolSteppedDownData(OutboundModel):
    school_urn: Code
    child: SchoolChild
    to: text(64)
class ExtendedData(ChangeData):
    """A manager extended the stage's clock (extend_clock): its deadline before and after; null while the clock
    is paused awaiting information (it has no deadline until it resumes). The reason stays in the history."""

    previous_due_at: UtcDatetime | None
    due_at: UtcDatetime | None

    @model_serializer(mode="wrap")
    def _keep_null_deadlines(self, handler):
        # Events are serialised without None values; the contract names both keys.
        data = handler(self)
        data.setdefault("previous_due_at", None)
        data.setdefault("due_at", None)
        return data




class SchoolClosedData(OutboundModel):
    school_urn: Code
    child: SchoolChild
    reason: CloseReason


# ---- one model per event type ----------------------------------------------------------------------


def _event(event_type: str, base: type[Envelope], data: type[OutboundModel] | None, doc: str) -> type[Envelope]:
    name = "".join(part.capitalize() for part in event_type.replace("_", ".").split(".")) + "Event"
    fields: dict[str, Any] = {"event_type": (Literal[event_type], ...)}
    if data is not None:
        fields["data"] = (data, ...)
    return create_model(name, __base__=base, __doc__=doc, **fields)


class SlaEnvelope(CaseEnvelope):
    """A deadline is near (sla.warning.<stage>) or passed (sla.breached.<stage>, once per case and stage)."""

    @model_validator(mode="after")
    def _stage_matches(self) -> "SlaEnvelope":
        if self.event_type.rsplit(".", 1)[-1] != self.data.stage:  # type: ignore[attr-defined]
            raise ValueError("data.stage must be the stage named in event_type")
        return self


# The rejection's `code`: one word for the kind of refusal (docs/contract.md, "Version 1.1 additions").
RejectionCode = Literal["invalid", "conflict", "unknown_sender", "not_permitted", "not_allowed_in_state",
                        "time_out_of_order"]
REJECTION_CODES: tuple[str, ...] = get_args(RejectionCode)


def public_code(code: str) -> str:
    """The contract's word for a refusal's fine-grained code (MessageRefused.code, kept for metrics):
    every kind of bad input (shape, field, version, exchange, unknown case...) is `invalid`."""
    return code if code in REJECTION_CODES else "invalid"


class ReferrerEnvelope(Envelope):
    """What became of a referrer's notification, on `referrer.<source>.<event>`: its `notification_id`, the
    `case_id` it became or joined, `source` (the referrer's), `sequence` (the case's change it follows), and
    no personal data."""

    case_id: Id
    notification_id: Id
    source: Source
    sequence: int = Field(ge=1)


class ReferrerReceivedData(OutboundModel):
    pass


class ReferrerLinkedData(OutboundModel):
    pass


class ReferrerInformationRequestedData(OutboundModel):
    missing: list[Path]


class ReferrerDecidedData(OutboundModel):
    service: Service
    district: Name


class ReferrerAllocatedData(OutboundModel):
    team: Name


class ReferrerClosedData(OutboundModel):
    reason: CloseReason
    stepped_down: bool


class RejectionEnvelope(Envelope):
    """A message was refused: `reason` is one sentence a person can act on, `errors` one line per problem
    (never the message's personal data), plus whichever ids could be read from the message, and `code`,
    one word for the kind of refusal."""

    reason: text(2000)
    code: RejectionCode | None = None
    errors: list[str]
    notification_id: Id | None = None
    command_id: Id | None = None
    case_id: Id | None = None
    message_id: text(255) | None = None
    command: Name | None = None
    state: CaseState | None = None


_CASE_EVENTS = {
    "case.received": (ReceivedData, "A notification became a case (sequence 1); data.needs_review lists what a person must judge."),
    "case.checked": (CheckedData, "The checks found the case sufficient (the engine's own checks, or a check command)."),
    "case.information_requested": (InformationRequestedData, "Information was asked for; the SLA clocks pause."),
    "case.information_provided": (InformationProvidedData, "Information was provided (paths only); the clocks resume."),
    "case.triaged": (TriagedData, "The case was triaged: service, district and priority decided."),
    "case.allocated": (AllocatedData, "The case was allocated to a team and worker; carries the child and the notifier's contact."),
    "case.assessed": (AssessedData, "The assessment is done."),
    "case.stepped_down": (SteppedDownData, "Intensive support ended; the family moves to the named service."),
    "case.closed": (ClosedData, "The case was closed, with a reason."),
    "case.consent_changed": (ConsentChangedData, "The family's consent was recorded again (record_consent); the state is unchanged."),
    "case.notification_linked": (NotificationLinkedData, "A notification for the child of this open case joined it (matched by keyed identifier hashes); state and clocks unchanged."),
}
_SCHOOL_EVENTS = {
    "school.allocated": (SchoolAllocatedData, "The child's school is told the case was allocated (only with consent to share)."),
    "school.stepped_down": (SchoolSteppedDownData, "The child's school is told the case was stepped down (only with consent to share)."),
    "school.closed": (SchoolClosedData, "The child's school is told the case was closed (only with consent to share)."),
}
# The referrer hears what became of its notification (docs/contract.md, "Referrers told").
_REFERRER_EVENTS = {
    "referrer.received": (ReferrerReceivedData, "The referrer's notification became a case."),
    "referrer.linked": (ReferrerLinkedData, "The referrer's notification joined a case already open for the child."),
    "referrer.information_requested": (ReferrerInformationRequestedData, "Information was asked for (the field paths)."),
    "referrer.decided": (ReferrerDecidedData, "The case was triaged: the service and district."),
    "referrer.allocated": (ReferrerAllocatedData, "The case was allocated to a team."),
    "referrer.closed": (ReferrerClosedData, "The case was closed: the reason, and whether it was stepped down first."),
}

EVENT_MODELS: dict[str, type[Envelope]] = {}
for _type, (_data, _doc) in _CASE_EVENTS.items():
    EVENT_MODELS[_type] = _event(_type, CaseEnvelope, _data, _doc)
for _kind in ("warning", "breached"):
    for _stage in SLA_STAGES:
        _type = f"sla.{_kind}.{_stage}"
        _doc = f"The {_stage} deadline is near." if _kind == "warning" else f"The {_stage} deadline passed (once per case)."
        EVENT_MODELS[_type] = _event(_type, SlaEnvelope, SlaData, _doc)
for _type, (_data, _doc) in _SCHOOL_EVENTS.items():
    EVENT_MODELS[_type] = _event(_type, CaseEnvelope, _data, _doc)
for _type, (_data, _doc) in _REFERRER_EVENTS.items():
    EVENT_MODELS[_type] = _event(_type, ReferrerEnvelope, _data, _doc)
EVENT_MODELS["notification.rejected"] = _event("notification.rejected", RejectionEnvelope, None, "A notification was refused.")
EVENT_MODELS["command.rejected"] = _event("command.rejected", RejectionEnvelope, None, "A command was refused.")


def serialize_event(event: dict[str, Any]) -> bytes:
    """Validate an event the engine built and return its compact UTF-8 JSON body (None values left out)."""
    event_type = event.get("event_type")
    model = EVENT_MODELS.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        raise InvalidEvent(event_type, ["event_type: not a known event type"])
    try:
        instance = model.model_validate(event)
    except ValidationError as exc:
        # The event may hold a child's details (case.allocated): report paths, not values.
        raise InvalidEvent(event_type, safe_errors(exc)) from None
    return model.__pydantic_serializer__.to_json(instance, exclude_none=True)
for _stage in SLA_STAGES:
    EVENT_MODELS[f"sla.extended.{_stage}"] = _event(
        f"sla.extended.{_stage}", CaseEnvelope, ExtendedData,
        f"A manager extended the {_stage} deadline (extend_clock); the state is unchanged.")
