"""Field paths a person may ask for or provide after intake (KNOWN_FIELD_PATHS), and applying them to a notification."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainSerializer, ValidationError, create_model, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from .base import FreeText, InboundModel, Name, PastDate, canonical_json
from .decoding import refused_for_fields
from .errors import field_path, safe_error_items
from .identifiers import NhsNumber, ReferralSourceCode, SchoolUrn, Upn
from .notification import Email, Notification, Phone, Postcode, SocialCareStatus

# Each path with the same type its field has in Notification, so a provided value is checked exactly as
# it would have been on intake (a test holds the two together).
PROVIDABLE_FIELDS: dict[str, Any] = {
    "reason": FreeText,
    "support_already_offered": FreeText,
    "intended_outcome": FreeText,
    "child_voice": FreeText,
    "social_care_status": SocialCareStatus,
    "referrer.organisation": Name,
    "referrer.contact_name": Name,
    "referrer.contact_email": Email,
    "referrer.contact_phone": Phone,
    "referrer.school_urn": SchoolUrn,
    "referrer.referral_source_code": ReferralSourceCode,
    "child.given_name": Name,
    "child.family_name": Name,
    "child.date_of_birth": PastDate,
    "child.expected_date_of_birth": date,
    "child.postcode": Postcode,
    "child.school_urn": SchoolUrn,
    "child.nhs_number": NhsNumber,
    "child.upn": Upn,
    "child.placing_authority": Name,
}
KNOWN_FIELD_PATHS: frozenset[str] = frozenset(PROVIDABLE_FIELDS)
# Consent is not a detail to ask for or provide: it changes only through record_consent, the one
# command a sender's entry can be allowed or refused (docs/contract.md, "Senders and what each may do").
CONSENT_PREFIX = "consent."
CONSENT_PATHS = ("consent.family_consents", "consent.share_with_school")
CONSENT_ONLY_BY_RECORD_CONSENT = "Consent changes only through the record_consent command"


def refuse_consent_paths(paths) -> None:
    """Raise a validation error naming record_consent when any of `paths` is a consent path."""
    if any(isinstance(path, str) and path.startswith(CONSENT_PREFIX) for path in paths):
        raise PydanticCustomError("consent_path", CONSENT_ONLY_BY_RECORD_CONSENT)


def _drop_default(schema: dict[str, Any]) -> None:
    # Absent means "not provided"; a null default in the schema would suggest null may be sent.
    schema.pop("default", None)


class _ProvidedFieldsBase(InboundModel):
    model_config = {"json_schema_extra": {"minProperties": 1}}

    @model_validator(mode="after")
    def _not_empty(self) -> "_ProvidedFieldsBase":
        if not self.model_fields_set:
            raise PydanticCustomError("fields_empty", "Give at least one field")
        # An after-validator: a before one would validate the values in Python mode, where strict
        # validation refuses a JSON date string.
        refuse_consent_paths(name.replace("__", ".") for name in self.model_fields_set)
        return self


# One optional property per known path (named by its dotted path), so each value gets its own error
# with its own path and an unknown path is an "extra" error that names it.
ProvidedFields = create_model(
    "ProvidedFields",
    __base__=_ProvidedFieldsBase,
    __doc__="The details provided, by field path; at least one. Each value is checked as on intake.",
    **{
        path.replace(".", "__"): (kind, Field(default=None, alias=path, json_schema_extra=_drop_default))
        for path, kind in sorted(PROVIDABLE_FIELDS.items())
    },
    # Accepted by the model only to be refused by name, with the command to use instead; not in the schema.
    **{path.replace(".", "__"): (SkipJsonSchema[Any], Field(default=None, alias=path)) for path in CONSENT_PATHS},
)


def _as_dict(model: Any) -> dict[str, str | bool]:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


# What provide_information.fields holds after validation: a plain {path: value} dict (values as JSON
# gives them: text, dates as ISO strings, booleans), ready for apply_provided_fields.
ProvidedFieldsDict = Annotated[
    ProvidedFields,
    AfterValidator(_as_dict),
    PlainSerializer(lambda value: value, return_type=dict[str, str | bool]),
]


def apply_provided_fields(
    notification: Notification, fields: dict[str, object], *, now: datetime | None = None
) -> Notification:
    """A new, validated Notification with each dotted path set; raises MessageRefused naming bad paths."""
    ids = {"notification_id": notification.notification_id}
    problems: list[tuple[str, str]] = []
    for path, value in fields.items():
        if path not in KNOWN_FIELD_PATHS:
            problems.append((field_path((path,)), "not a known field path"))
        elif not isinstance(value, (str, bool)):
            problems.append((path, "value must be text or true/false"))
    if problems:
        raise refused_for_fields("provided information", problems, ids)
    data = notification.model_dump(mode="json", exclude_none=True)
    if "child.date_of_birth" in fields and "child.expected_date_of_birth" not in fields:
        # The unborn child has been born: the date of birth replaces the expected one.
        data["child"].pop("expected_date_of_birth", None)
    for path, value in fields.items():
        target = data
        *parents, leaf = path.split(".")
        for name in parents:
            target = target.setdefault(name, {})
        target[leaf] = value
    # received_at was checked on intake against the clock of that time; never let a later (or test)
    # clock make the stored notification look "in the future" now.
    clock = max(now or datetime.now(timezone.utc), notification.received_at)
    try:
        return Notification.model_validate_json(canonical_json(data), strict=True, context={"now": clock})
    except ValidationError as exc:
        raise refused_for_fields("provided information", safe_error_items(exc), ids) from None
