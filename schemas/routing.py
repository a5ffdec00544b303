"""Broker names and routing keys of the contract: exchanges, the dead-letter queue, districts, event keys."""

from __future__ import annotations

import re

NOTIFICATIONS_EXCHANGE = "earlyhelp.notifications"
COMMANDS_EXCHANGE = "earlyhelp.commands"
EVENTS_EXCHANGE = "earlyhelp.events"
DEAD_LETTER_QUEUE = "earlyhelp.dead-letter"

# Kent's twelve districts, the shipped default; an authority configures its own.
DEFAULT_DISTRICTS: tuple[str, ...] = (
    "Dartford",
    "Gravesham",
    "Sevenoaks",
    "Maidstone",
    "Tonbridge and Malling",
    "Tunbridge Wells",
    "Canterbury",
    "Swale",
    "Thanet",
    "Ashford",
    "Dover",
    "Folkestone and Hythe",
)

UNASSIGNED = "unassigned"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SLA_PREFIXES = ("sla.warning.", "sla.breached.", "sla.extended.")
_SLA_STAGES = ("triage", "allocation", "assessment")
_UNCHANGED = frozenset({"notification.rejected", "command.rejected"})
_SCHOOL_EVENTS = frozenset({"school.allocated", "school.stepped_down", "school.closed"})
REFERRER_EVENTS = ("received", "linked", "information_requested", "decided", "allocated", "closed")


def district_slug(name: str | None) -> str:
    """A district as a routing-key segment: "Tonbridge and Malling" -> "tonbridge-and-malling"; None -> "unassigned"."""
    if name is None:
        return UNASSIGNED
    return _NOT_SLUG.sub("-", name.lower()).strip("-") or UNASSIGNED


def event_routing_key(event_type: str, *, district: str | None = None, school_urn: str | None = None,
                      source: str | None = None) -> str:
    """The routing key an event is published with; `district` is the display name (or None before triage);
    `source` the referrer's, for referrer.<event> (key `referrer.<source>.<event>`)."""
    if event_type in _UNCHANGED:
        return event_type
    if event_type.startswith("referrer.") and event_type.removeprefix("referrer.") in REFERRER_EVENTS:
        if not source:
            raise ValueError(f"{event_type} needs the referrer's source")
        return f"referrer.{source}.{event_type.removeprefix('referrer.')}"
    if event_type in _SCHOOL_EVENTS:
        if not school_urn:
            raise ValueError(f"{event_type} needs the school's URN")
        return f"school.{school_urn}.{event_type.removeprefix('school.')}"
    if event_type.startswith("case.") or (
        event_type.startswith(_SLA_PREFIXES) and event_type.rsplit(".", 1)[-1] in _SLA_STAGES
    ):
        return f"{event_type}.{district_slug(district)}"
    raise ValueError(f"unknown event type {event_type!r}")
