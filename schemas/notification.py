"""The notification model (upstream -> earlyhelp.notifications, key notification.<source>) and its parser."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, get_args

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from .base import FreeText, Id, InboundModel, Name, PastDate, PastDatetime, optional, text
from .decoding import decode_message, validate_body
from .errors import MessageRefused
from .identifiers import NhsNumber, ReferralSourceCode, SchoolUrn, Upn

Kind = Literal["request_for_support", "step_down", "missing_child"]
Source = Literal["school", "health", "social_care", "family", "housing", "police", "voluntary", "other", "not_recorded"]
SocialCareStatus = Literal["open", "closed", "never_known"]

KINDS: tuple[str, ...] = get_args(Kind)
SOURCES: tuple[str, ...] = get_args(Source)
SOCIAL_CARE_STATUSES: tuple[str, ...] = get_args(SocialCareStatus)

Postcode = text(16)
Email = text(254)
Phone = text(40)


class Referrer(InboundModel):
    """Who notified the service. `source` is also the routing key's last word."""

    source: Source
    organisation: optional(Name) = None
    contact_name: optional(Name) = None
    contact_email: optional(Email) = None
    contact_phone: optional(Phone) = None
    school_urn: optional(SchoolUrn) = None
    referral_source_code: optional(ReferralSourceCode) = None


class Child(InboundModel):
    """The child: names, and the date of birth or (for an unborn child) the expected date of birth."""

    given_name: Name
    family_name: Name
    date_of_birth: PastDate | None = None
    expected_date_of_birth: date | None = None
    postcode: optional(Postcode) = None
    school_urn: optional(SchoolUrn) = None
    nhs_number: optional(NhsNumber) = None
    upn: optional(Upn) = None
    placing_authority: optional(Name) = None

    @model_validator(mode="after")
    def _one_date(self) -> "Child":
        if self.date_of_birth is None and self.expected_date_of_birth is None:
            raise PydanticCustomError("date_missing", "Give date_of_birth, or expected_date_of_birth for an unborn child")
        if self.date_of_birth is not None and self.expected_date_of_birth is not None:
            raise PydanticCustomError("date_twice", "Give date_of_birth or expected_date_of_birth, not both")
        return self


class Consent(InboundModel):
    """What the family agreed to. Absent means not recorded: only `true` counts as consent."""

    family_consents: bool | None = None
    share_with_school: bool | None = None


class Notification(InboundModel):
    """A request for support, a step-down from social care, or a missing-child notification.

    Sent by upstream systems to the `earlyhelp.notifications` exchange with routing key
    `notification.<source>`, where `<source>` equals `referrer.source`. `received_at` (when the service
    received it; not in the future) starts the SLA clocks. Optional identifiers are checked when present.
    `child.placing_authority` and `social_care_status` are for `missing_child` notifications.
    """

    schema_version: Literal[1]
    notification_id: Id
    kind: Kind
    received_at: PastDatetime
    priority: bool = False
    referrer: Referrer
    child: Child
    reason: FreeText
    support_already_offered: optional(FreeText) = None
    intended_outcome: optional(FreeText) = None
    child_voice: optional(FreeText) = None
    consent: Consent | None = None
    social_care_status: optional(SocialCareStatus) = None


_NOTIFICATION_IDS = ("notification_id",)


def parse_notification(
    body: bytes,
    routing_key: str,
    *,
    now: datetime,
    content_encoding: str | None = None,
) -> Notification:
    """Decode, check and validate one notification delivery; raises MessageRefused."""
    document, ids = decode_message(body, content_encoding, "notification", _NOTIFICATION_IDS)
    prefix, _, key_source = routing_key.partition(".")
    if prefix != "notification" or key_source not in SOURCES:
        raise MessageRefused(
            "The routing key must be notification.<source>, where <source> is one of "
            + ", ".join(SOURCES) + "; send the notification again with the key for referrer.source.",
            ["routing_key: not notification.<source> with a known source"],
            ids=ids,
            code="routing_key",
        )
    notification = validate_body(Notification, body, document, ids, "notification", {"now": now})
    if notification.referrer.source != key_source:
        # Source words are not personal data, so naming both helps the sender fix it.
        raise MessageRefused(
            f"The routing key says the source is {key_source} but referrer.source is "
            f"{notification.referrer.source}; send it with routing key notification.{notification.referrer.source} "
            "or correct referrer.source.",
            ["referrer.source: does not match the routing key"],
            ids=ids,
            code="routing_key_mismatch",
        )
    return notification
