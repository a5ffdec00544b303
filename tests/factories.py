"""Small builders for valid notification and command bodies (dicts) and their validated models.

Every body is valid as built; tests change only what they are about:

    notification_body(child={"date_of_birth": "2007-11-20"}, consent=OMIT)
    command_body("triage", "case-1", district="Maidstone", priority=True)
    as_notification(body), as_command("triage", body)     # through the schemas' parse functions

Nested objects given as dicts are merged into the default one (`child={"postcode": OMIT}` drops the
child's postcode and keeps the rest); `OMIT` as a value leaves a key out; `replace=True` in
`notification_body` replaces nested objects instead of merging. Times are in the past both for the fixed
`NOW` the parse helpers use and for the real clock (the contract's example, 20 November 2026).
"""

from __future__ import annotations

import copy
import itertools
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

from earlyhelp.schemas import Notification, parse_command, parse_notification

UTC = timezone.utc

# The validation clock for as_notification / as_command: just after every default time below.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RECEIVED_AT = "2026-11-20T09:14:00Z"
ISSUED_AT = "2026-11-21T10:00:00Z"
ACTOR = {"id": "worker-0042", "role": "early_help_practitioner"}


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
"""Use as a value to leave that key out of the body."""

# The contract's example notification (docs/contract.md, "Notification").
EXAMPLE_NOTIFICATION: dict[str, Any] = {
    "schema_version": 1,
    "notification_id": "oakwood-2026-000457",
    "kind": "request_for_support",
    "received_at": RECEIVED_AT,
    "priority": False,
    "referrer": {
        "source": "school",
        "organisation": "Oakwood Primary School",
        "contact_name": "J. Patel",
        "contact_email": "dsl@oakwood.example",
        "contact_phone": "01622 000000",
        "school_urn": "118923",
    },
    "child": {
        "given_name": "Sam",
        "family_name": "Taylor",
        "date_of_birth": "2015-05-02",
        "postcode": "ME14 1AA",
        "school_urn": "118923",
    },
    "reason": "The nature of the concern, in the notifier's words.",
    "support_already_offered": "What the notifier has already tried.",
    "intended_outcome": "What the notifier hopes support will achieve.",
    "child_voice": "The child's wishes and feelings.",
    "consent": {"family_consents": True, "share_with_school": True},
}

# A valid value for each command's own fields (docs/contract.md, "Commands").
DEFAULT_COMMAND_FIELDS: dict[str, dict[str, Any]] = {
    "check": {"outcome": "sufficient"},
    "request_information": {"missing": ["child_voice"]},
    "provide_information": {"fields": {"child_voice": "Sam would like help with mornings."}},
    "triage": {"service": "early_help_unit", "district": "Maidstone"},
    "allocate": {"team": "Maidstone Early Help Unit 2", "worker_id": "worker-0042"},
    "assess": {"outcome": "family_plan_agreed", "plan_summary": "Weekly sessions with the family."},
    "step_down": {"to": "open_access"},
    "close": {"reason": "needs_met"},
    "record_consent": {"share_with_school": False},
    "extend_clock": {"stage": "triage", "extra": {"amount": 2, "unit": "working_days"},
                     "reason": "The family asked to meet after the half-term holiday."},
}

_numbers = itertools.count(1)


def _merge(base: dict[str, Any], overrides: dict[str, Any], *, replace: bool = False) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is OMIT:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict) and not replace:
            result[key] = _merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def notification_body(*, replace: bool = False, **overrides: Any) -> dict[str, Any]:
    """The contract's example notification (complete, sufficient, nothing to review) with `overrides`.

    A notification given its own `notification_id` is another child (its date of birth follows from the id)
    unless the overrides name the child's identity: the engine links a notification for a child it already
    has open (docs/contract.md, "A child already known"), and most tests mean a new child by a new id."""
    body = _merge(EXAMPLE_NOTIFICATION, overrides, replace=replace)
    child = overrides.get("child")
    names_child = isinstance(child, dict) and bool({"given_name", "family_name", "date_of_birth", "nhs_number", "upn"}
                                                   & set(child))
    if overrides.get("notification_id", EXAMPLE_NOTIFICATION["notification_id"]) != EXAMPLE_NOTIFICATION["notification_id"] \
            and not names_child and isinstance(body.get("child"), dict) \
            and body["child"].get("date_of_birth") == EXAMPLE_NOTIFICATION["child"]["date_of_birth"]:
        body["child"]["date_of_birth"] = date_of_birth_for(str(overrides["notification_id"]))
    return body


_births: dict[str, str] = {}


def date_of_birth_for(notification_id: str) -> str:
    """A date of birth of its own for each notification id (from January 2009, one day apart in the order the
    ids are first seen, so 6,000 ids in one process never share one); the same id gets the same date."""
    if notification_id not in _births:
        _births[notification_id] = (date(2009, 1, 1) + timedelta(days=len(_births) % 6000)).isoformat()
    return _births[notification_id]


def command_body(name: str, case_id: str = "case-1", **fields: Any) -> dict[str, Any]:
    """A valid `name` command for `case_id`: a fresh command_id, the default fields, then `fields`.

    `fields` may also override the common ones (`command_id`, `actor`, `issued_at`); `OMIT` drops a key.
    A dict given for `fields` (provide_information) or `actor` replaces the default one.
    """
    base = {
        "schema_version": 1,
        "command_id": f"test-tools-{name}-{next(_numbers):06d}",
        "case_id": case_id,
        "actor": dict(ACTOR),
        "issued_at": ISSUED_AT,
        **copy.deepcopy(DEFAULT_COMMAND_FIELDS[name]),
    }
    return _merge(base, fields, replace=True)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode("utf-8")


def notification_key(body: dict[str, Any]) -> str:
    source = body.get("referrer", {}).get("source", "school") if isinstance(body.get("referrer"), dict) else "school"
    return f"notification.{source}"


def as_notification(body: dict[str, Any], *, now: datetime = NOW) -> Notification:
    """Validate `body` through parse_notification, with the routing key its referrer.source names."""
    return parse_notification(encode(body), notification_key(body), now=now)


def as_command(name: str, body: dict[str, Any], *, now: datetime = NOW) -> Any:
    """Validate `body` through parse_command as a `case.<name>` command."""
    return parse_command(encode(body), f"case.{name}", now=now)


def notification(*, replace: bool = False, **overrides: Any) -> Notification:
    """notification_body(**overrides), validated."""
    return as_notification(notification_body(replace=replace, **overrides))


def command(name: str, case_id: str = "case-1", **fields: Any) -> Any:
    """command_body(name, case_id, **fields), validated."""
    return as_command(name, command_body(name, case_id, **fields))
