"""Command models (-> earlyhelp.commands, key case.<command>), COMMAND_MODELS, and the command parser."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .base import FreeText, Id, InboundModel, Name, PastDatetime, ShortText, optional, text
from .decoding import decode_message, validate_body
from .errors import MessageRefused
from .fields import KNOWN_FIELD_PATHS, ProvidedFieldsDict, refuse_consent_paths
from .routing import DEFAULT_DISTRICTS, district_slug

Service = Literal["early_help_unit", "open_access", "commissioned", "social_care", "advice_only"]
CloseReason = Literal[
    "needs_met", "stepped_up", "no_further_action", "consent_withdrawn", "moved_away", "duplicate", "ineligible", "other"
]
# A Literal of the known paths, so the JSON Schema lists them and an unknown one is refused.
FieldPath = Literal[tuple(sorted(KNOWN_FIELD_PATHS))]  # type: ignore[valid-type]

SERVICES: tuple[str, ...] = get_args(Service)
CLOSE_REASONS: tuple[str, ...] = get_args(CloseReason)


class Actor(InboundModel):
    """Who did it: a person's or system's id and their role."""

    id: Id
    role: ShortText


class Command(InboundModel):
    """Fields every command has. `issued_at` is when it happened (clocks run from it); not in the future."""

    name: ClassVar[str]

    schema_version: Literal[1]
    command_id: Id
    case_id: Id
    actor: Actor
    issued_at: PastDatetime


class CheckCommand(Command):
    """check (from received): a person accepts the case as sufficient -> checked."""

    name: ClassVar[str] = "check"
    outcome: Literal["sufficient"]


class RequestInformationCommand(Command):
    """request_information (from received, checked, triaged): ask the notifier for the listed fields -> awaiting_information."""

    name: ClassVar[str] = "request_information"
    missing: list[FieldPath] = Field(min_length=1, max_length=len(KNOWN_FIELD_PATHS))

    @field_validator("missing", mode="before")
    @classmethod
    def _no_consent(cls, value: Any) -> Any:
        if isinstance(value, list):
            refuse_consent_paths(value)
        return value


class ProvideInformationCommand(Command):
    """provide_information (from awaiting_information): the added details by field path -> the state it came from."""

    name: ClassVar[str] = "provide_information"
    fields: ProvidedFieldsDict


class TriageCommand(Command):
    """triage (from checked): the service, the district (one of the configured districts) and priority -> triaged."""

    name: ClassVar[str] = "triage"
    service: Service
    district: Name
    priority: bool | None = None

    @field_validator("district")
    @classmethod
    def _configured_district(cls, value: str, info: ValidationInfo) -> str:
        # Matched by slug, so case, spacing and the routing-key form ("tonbridge-and-malling") all work;
        # the stored value is always the configured display name.
        context = info.context if isinstance(info.context, dict) else {}
        districts: Sequence[str] = context.get("districts") or DEFAULT_DISTRICTS
        wanted = district_slug(value)
        for district in districts:
            if district_slug(district) == wanted:
                return district
        raise PydanticCustomError(
            "district_unknown", "Not one of the configured districts: {known}", {"known": ", ".join(districts)}
        )


class AllocateCommand(Command):
    """allocate (from triaged): the team and worker -> allocated."""

    name: ClassVar[str] = "allocate"
    team: Name
    worker_id: Id


class AssessCommand(Command):
    """assess (from allocated): the assessment's outcome and, optionally, a summary of the plan -> assessed."""

    name: ClassVar[str] = "assess"
    outcome: ShortText
    plan_summary: optional(FreeText) = None


class StepDownCommand(Command):
    """step_down (from assessed): where the family goes next, e.g. open_access, universal -> stepped_down."""

    name: ClassVar[str] = "step_down"
    to: text(64)


class CloseCommand(Command):
    """close (from any state but closed): why -> closed."""

    name: ClassVar[str] = "close"
    reason: CloseReason


class RecordConsentCommand(Command):
    """record_consent (from any state but closed): what the family now agrees to; the state is unchanged.

    From a withdrawal of `share_with_school` on, the child's school is told nothing more about the case.
    `family_consent` left out keeps what was recorded before.
    """

    name: ClassVar[str] = "record_consent"
    share_with_school: bool
    family_consent: bool | None = None


class ClockExtra(InboundModel):
    """Extra time for a stage: a whole number of working days (counted like the allowance) or calendar days."""

    amount: int = Field(ge=1, le=365)
    unit: Literal["working_days", "calendar_days"]


class ExtendClockCommand(Command):
    """extend_clock (from any state but closed, for a running stage): a manager grants a stage's clock extra
    time, with a reason; the state is unchanged.

    The deadline moves by `extra` and the warning with it; a warning or breach already published stands.
    `reason` is kept in the case's history, never in the event.
    """

    name: ClassVar[str] = "extend_clock"
    stage: Literal["triage", "allocation", "assessment"]
    extra: ClockExtra
    reason: text(2000, multiline=True)


# Every command model defined above, in the order written (the contract's order): a new model joins by being
# defined. Which of them the engine handles, and how, is its command table (workflows/commands.py).
COMMAND_MODELS: dict[str, type[Command]] = {model.name: model for model in Command.__subclasses__()}

_COMMAND_IDS = ("command_id", "case_id")


def parse_command(
    body: bytes,
    routing_key: str,
    *,
    now: datetime,
    districts: Sequence[str] = DEFAULT_DISTRICTS,
    content_encoding: str | None = None,
    models: dict[str, type[Command]] | None = None,
) -> Any:
    """Decode, check and validate one command delivery into the model its routing key names; raises MessageRefused.

    `models`: the commands accepted, by name (the engine passes its command table's); default COMMAND_MODELS."""
    models = COMMAND_MODELS if models is None else models
    document, ids = decode_message(body, content_encoding, "command", _COMMAND_IDS)
    prefix, _, command = routing_key.partition(".")
    model = models.get(command) if prefix == "case" else None
    if model is None:
        raise MessageRefused(
            "The routing key must be case.<command>, where <command> is one of "
            + ", ".join(models) + "; send the command with one of those keys.",
            ["routing_key: not case.<command> with a known command"],
            ids=ids,
            code="unknown_command",
        )
    return validate_body(model, body, document, ids, f"{command} command", {"now": now, "districts": districts})
