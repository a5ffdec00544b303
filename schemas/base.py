"""Shared building blocks of every message model: configurations, text and time types, content_hash."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

# The contract: "not in the future" allows 5 minutes of clock skew.
CLOCK_SKEW = timedelta(minutes=5)
# Dates of birth are local dates; "today" is today in the service's own time zone.
LOCAL_TZ = ZoneInfo("Europe/London")


class InboundModel(BaseModel):
    """Base of what senders give us: unknown fields are errors that name the field (a typo must not pass)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class OutboundModel(BaseModel):
    """Base of what the engine publishes: still closed, so a misspelt key in the engine fails its tests."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# C0 controls, DEL and C1 controls: a newline in an actor id printed a fake line into a timeline, an
# escape sequence in a team name reached an operator's terminal (issue 11). Free text keeps its lines.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LAYOUT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _refuse_controls(pattern: re.Pattern, allowed: str):
    def check(value: str, info: ValidationInfo) -> str:
        if pattern.search(value) is not None and not _is_stored(info):
            raise PydanticCustomError("control_character", "Must not contain control characters" + allowed)
        return value

    return check


_single_line = AfterValidator(_refuse_controls(_CONTROL, ""))
_multi_line = AfterValidator(_refuse_controls(_CONTROL_BUT_LAYOUT, " (only newlines and tabs)"))


def text(max_length: int, *, multiline: bool = False) -> Any:
    """A required string: surrounding whitespace stripped, then 1..max_length characters, no control
    characters (a multi-line text may keep newlines, carriage returns and tabs)."""
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length),
                     _multi_line if multiline else _single_line]


def unchecked_text(max_length: int) -> Any:
    """Text the engine copies into what it publishes from what a sender set outside the body (a message_id,
    a refusal's reason): published as given, since refusing it would lose the rejection event itself."""
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)]


def _blank_to_none(value: object) -> object:
    # Upstream systems send "" or "  " for "not known"; that is absence, not a value to keep.
    if isinstance(value, str) and not value.strip():
        return None
    return value


def optional(inner: Any) -> Any:
    """An optional text field of type `inner`, where a blank string counts as absent.

    Only for types validated from a JSON string as a Python str (text, identifiers, Literals): behind a
    before-validator pydantic validates in Python mode, where strict mode refuses a string for a date.
    """
    return Annotated[inner | None, BeforeValidator(_blank_to_none)]


Id = text(200)
Name = text(200)
ShortText = text(100)
FreeText = text(10_000, multiline=True)


def now_from(info: ValidationInfo | None) -> datetime:
    """The validation's clock: context["now"] when given (tests, replays), else the real UTC clock."""
    context = info.context if info is not None else None
    now = context.get("now") if isinstance(context, dict) else None
    return now if now is not None else datetime.now(timezone.utc)


def _to_utc(value: datetime) -> datetime:
    # One representation per instant, so "…Z", "…+00:00" and "…+01:00" of the same moment compare
    # and hash equal; offsets carry no meaning here (SLA days are counted in Europe/London).
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        # "0001-01-01T00:00:00+05:00" has no UTC equivalent; without this the consumer would crash.
        raise PydanticCustomError("datetime_out_of_range", "Time is out of the supported range") from None


def _is_stored(info: ValidationInfo) -> bool:
    # context={"stored": True}: reloading what was validated on intake (the case's details). A clock
    # check then would only compare an old message with a different clock (tests, replays) and fail.
    return isinstance(info.context, dict) and bool(info.context.get("stored"))


def _not_in_future(value: datetime, info: ValidationInfo) -> datetime:
    if _is_stored(info):
        return value
    if value > now_from(info) + CLOCK_SKEW:
        raise PydanticCustomError(
            "in_future", "Time is in the future (more than 5 minutes ahead of the engine's clock)"
        )
    return value


def _date_not_in_future(value: date, info: ValidationInfo) -> date:
    if _is_stored(info):
        return value
    today = (now_from(info) + CLOCK_SKEW).astimezone(LOCAL_TZ).date()
    if value > today:
        raise PydanticCustomError("in_future", "Date is in the future")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
PastDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc), AfterValidator(_not_in_future)]
PastDate = Annotated[date, AfterValidator(_date_not_in_future)]


def canonical_json(data: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the one byte form of a parsed message."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_hash(message: BaseModel) -> str:
    """sha256 of a message's parsed content, so a repeat is recognised whatever its spacing, key order
    or time-zone spelling, and a different body under the same id is not (the contract's conflict rule)."""
    return hashlib.sha256(canonical_json(message.model_dump(mode="json"))).hexdigest()
