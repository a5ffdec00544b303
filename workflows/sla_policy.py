"""The SLA policy as data: which events start and stop each stage's clock, and its allowance.

A local authority changes its timescales by editing a TOML file (the shipped default, Kent's values,
is ``workflows/data/sla_policy.toml``), not the code. ``load_policy`` validates the file and raises
``PolicyError`` with a message that names the file and the problem, so a person can fix it.
"""

from __future__ import annotations

import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .calendar import Counting, WorkingDayCalendar

Unit = Literal["calendar_days", "working_days"]

# The contract's stages (routing keys sla.warning.<stage>.*), in the order a case meets them.
STAGES: tuple[str, ...] = ("triage", "allocation", "assessment")

# Events that mark a case reaching a state; the pause/resume events (information_requested,
# information_provided) are deliberately absent: they pause clocks, they do not start or stop them.
STATE_EVENTS: tuple[str, ...] = (
    "case.received",
    "case.checked",
    "case.triaged",
    "case.allocated",
    "case.assessed",
    "case.stepped_down",
    "case.closed",
)

# A closed case has no running clocks, so every stage stops on it whether or not the file says so.
ALWAYS_STOPS_ON = "case.closed"

DEFAULT_POLICY_RESOURCE = "data/sla_policy.toml"


class PolicyError(ValueError):
    """The SLA policy file cannot be used; the message says which file and what to fix."""


class Allowance(BaseModel):
    """How long a stage may take: a whole number of calendar days (24 h each) or working days."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    amount: int = Field(gt=0)
    unit: Unit


class StagePolicy(BaseModel):
    """One stage's clock: the event that starts it, the events that stop it, its allowance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_on: str
    stop_on: tuple[str, ...]
    allowance: Allowance
    # Used instead of `allowance` for a priority case, where set (the contract: triage in 2 days).
    priority_allowance: Allowance | None = None

    @field_validator("start_on")
    @classmethod
    def _known_start(cls, value: str) -> str:
        _check_event(value)
        if value == ALWAYS_STOPS_ON:
            raise ValueError(f"{ALWAYS_STOPS_ON} stops every clock; it cannot start one")
        return value

    @field_validator("stop_on")
    @classmethod
    def _known_stops(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for event in value:
            _check_event(event)
        if ALWAYS_STOPS_ON not in value:
            value = (*value, ALWAYS_STOPS_ON)
        return value

    @model_validator(mode="after")
    def _start_is_not_a_stop(self) -> StagePolicy:
        if self.start_on in self.stop_on:
            raise ValueError(f"{self.start_on} cannot both start and stop the same stage")
        return self


class SlaPolicy(BaseModel):
    """The whole policy: the stages, the warning point, the counting convention, closure days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A warning is due when this share of the allowance has gone (0.75: with a quarter left).
    warning_share: float = Field(default=0.75, gt=0, lt=1)
    counting: Counting = "next_working_day"
    # The authority's own closure days and bank holidays announced after the `holidays` release.
    extra_closures: tuple[date, ...] = ()
    stages: dict[str, StagePolicy]

    @field_validator("stages", mode="before")
    @classmethod
    def _the_contract_stages(cls, value: Any) -> Any:
        # Checked before the stages' contents, so a misspelt stage is reported as such.
        if not isinstance(value, dict):
            return value
        unknown = [name for name in value if name not in STAGES]
        if unknown:
            raise ValueError(
                f"unknown stage {', '.join(map(repr, unknown))}; the stages are {', '.join(STAGES)}"
            )
        missing = [name for name in STAGES if name not in value]
        if missing:
            raise ValueError(f"missing stage {', '.join(map(repr, missing))}; every stage needs a clock")
        return value

    def allowance_for(self, stage: str, priority: bool) -> Allowance:
        """The allowance for `stage`: the priority allowance for a priority case, where it has one."""
        policy = self._stage(stage)
        if priority and policy.priority_allowance is not None:
            return policy.priority_allowance
        return policy.allowance

    def stages_started_by(self, event_type: str) -> list[str]:
        """The stages whose clock this event starts, in the contract's order."""
        return [name for name in STAGES if self.stages[name].start_on == event_type]

    def stages_stopped_by(self, event_type: str) -> list[str]:
        """The stages whose clock this event stops, in the contract's order."""
        return [name for name in STAGES if event_type in self.stages[name].stop_on]

    def make_calendar(self) -> WorkingDayCalendar:
        """The working-day calendar with this policy's extra closure days."""
        return WorkingDayCalendar(self.extra_closures)

    def _stage(self, stage: str) -> StagePolicy:
        try:
            return self.stages[stage]
        except KeyError:
            raise KeyError(f"unknown SLA stage {stage!r}; the stages are {', '.join(STAGES)}") from None


def load_policy(path: Path | None = None) -> SlaPolicy:
    """Read and validate an SLA policy file; None reads the shipped default (Kent's values)."""
    if path is not None:
        return read_policy_file(path)[0]
    resource = resources.files(__package__).joinpath(DEFAULT_POLICY_RESOURCE)
    return policy_from_text(resource.read_bytes().decode("utf-8"), f"the shipped {DEFAULT_POLICY_RESOURCE}")


def read_policy_file(path: Path) -> tuple[SlaPolicy, str]:
    """The policy in `path` and its text, as `earlyhelp policy apply` stores it; PolicyError names file and key."""
    try:
        document = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read the SLA policy file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"the SLA policy file {path} is not UTF-8 text") from None
    return policy_from_text(document, str(path)), document


def policy_from_text(document: str, name: str) -> SlaPolicy:
    """Validate a policy's TOML text (a file's, or the stored one's); `name` says where it came from."""
    try:
        raw = tomllib.loads(document)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"the SLA policy file {name} is not valid TOML: {exc}") from None
    try:
        return SlaPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise PolicyError(f"the SLA policy file {name} is invalid: {problems}") from None


def _check_event(event: str) -> None:
    if event not in STATE_EVENTS:
        raise ValueError(f"unknown event type {event!r}; use one of {', '.join(STATE_EVENTS)}")


def _describe(error: Any) -> str:
    # Pydantic's wording, with the TOML key path a person can find in the file, the offending
    # value where it is short, and without the "Value error, " prefix of our own validators.
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] not in {"missing", "value_error"} and not isinstance(value, (dict, list)):
        message = f"{message} (got {value!r})"
    return f"{where}: {message}"
