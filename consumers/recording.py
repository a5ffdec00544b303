"""Turns a case's changes into what one transaction stores: history rows and outbox events.

Every entry point (a notification, a command, the SLA scanner) ends here, so an event's id, routing
key and envelope are made in one place, and so is what the referrer is told (`referrer.<source>.<event>`,
workflows/referrers.py), staged in the same transaction as the case's own events. The event id is derived
from the case, its version and the event type: the same transition can never be published under two ids.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import quote

from earlyhelp.records.disclosures import note_disclosure
from earlyhelp.schemas import EVENTS_EXCHANGE, event_routing_key, serialize_event
from earlyhelp.workflows.case_flow import Case, Change
from earlyhelp.workflows.referrers import notice

# Fixed namespace for event ids (uuid5): stable across workers, restarts and replays.
EVENT_NAMESPACE = uuid.UUID("8f7d3c52-6a1e-4c1b-9a0e-3f6b2d9e4a10")
CASE_NAMESPACE = uuid.UUID("2b9c1f4e-7d3a-4e8b-8c5f-1a6d0e7b9c23")


# A change recorded later than this after it happened carries data.recorded_late_hours.
RECORDED_LATE_AFTER = timedelta(hours=24)


def name_uuid(namespace: uuid.UUID, name: str) -> str:
    """str(uuid.uuid5(namespace, name)), the same text, a third of the time: a notification takes four
    (its case id and three event ids), and building each UUID object cost more than its SHA-1."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def case_id_for(source: str, notification_id: str) -> str:
    """A case's id follows from its notification's source and id (ids are unique per source), so two
    workers racing on one notification collide. Cases opened before ids were per source keep the id
    they were given (uuid5 of the notification id alone): a case id is never recomputed."""
    return name_uuid(CASE_NAMESPACE, f"{source}/{notification_id}")


def notification_key(source: str, notification_id: str) -> str:
    """The processed-id key of a notification: its id in its source's namespace."""
    return f"notification:{source}:{notification_id}"


def command_key(command_id: str, sender: str | None) -> str:
    """The processed-id key of a command: its id in its sender's namespace (the broker-checked user_id;
    escaped, so no user name can reach into another's), or the shared one of senders without user_id."""
    return f"command:{quote(sender, safe='')}:{command_id}" if sender else f"command:{command_id}"


def event_id_for(case_id: str, sequence: int, event_type: str) -> str:
    return name_uuid(EVENT_NAMESPACE, f"{case_id}/{sequence}/{event_type}")


def case_event(case: Case, change: Change, recorded_at: datetime, event_id: str | None = None) -> dict:
    """The contract's envelope for a case, SLA or school event (docs/contract.md, "Events")."""
    event = {
        "schema_version": 1,
        "event_id": event_id or event_id_for(case.case_id, change.sequence, change.event_type),
        "event_type": change.event_type,
        "occurred_at": change.occurred_at,
        "recorded_at": recorded_at,
        "case_id": case.case_id,
        "notification_id": case.notification_id,
        "state": change.state,
        "sequence": change.sequence,
        "source": case.source,
        "kind": case.kind,
        "priority": case.priority,
        "data": change.data,
    }
    if change.caused_by is not None:  # transitions have a cause; an SLA event is the clock's own
        event["caused_by"] = change.caused_by
    if case.district is not None:
        event["district"] = case.district
        event["service"] = case.service
    if change.previous_state is not None:
        event["previous_state"] = change.previous_state
    if change.actor is not None:
        event["actor"] = change.actor
    return event


def referrer_event(case: Case, change: Change, recorded_at: datetime) -> tuple[dict, str] | None:
    """What the referrer is told of `change` (workflows/referrers.py), as (event, routing key), or None:
    the notification and case ids, the referrer's source, the change's sequence, no personal data."""
    told = notice(change.event_type, change.data, change.previous_state, case.source, case.notification_id)
    if told is None:
        return None
    source, notification_id, name, data = told
    event_type = f"referrer.{name}"
    event = {
        "schema_version": 1, "event_id": event_id_for(case.case_id, change.sequence, event_type),
        "event_type": event_type, "occurred_at": change.occurred_at, "recorded_at": recorded_at,
        "case_id": case.case_id, "notification_id": notification_id, "source": source,
        "sequence": change.sequence, "data": data,
    }
    return event, event_routing_key(event_type, source=source)


def outbox_row(event: dict, routing_key: str, at: datetime) -> dict:
    return {
        "event_id": event["event_id"], "exchange": EVENTS_EXCHANGE, "routing_key": routing_key,
        "body": serialize_event(event), "headers": None,
        "properties": {"message_id": event["event_id"], "type": event["event_type"]},
        "mandatory": False, "created_at": at, "published_at": None, "attempts": 0,
    }


def record_changes(store, case: Case, changes: list[Change], recorded_at: datetime,
                   sender_user_id: str | None = None) -> None:
    """Stage the history rows (transitions only) and the events of `changes` in `store`."""
    for change in changes:
        if change.is_transition:
            change = marked_if_late(change, recorded_at)
        event = case_event(case, change, recorded_at)
        key = event_routing_key(change.event_type, district=case.district, school_urn=case.school_urn)
        store.add_outbox(outbox_row(event, key, recorded_at))
        note_disclosure(store, event, EVENTS_EXCHANGE, key, recorded_at)  # personal data: the disclosure log
        if (told := referrer_event(case, change, recorded_at)) is not None:  # the referrer hears, same transaction
            store.add_outbox(outbox_row(*told, recorded_at))
        if not change.is_transition:
            continue
        actor = change.actor or {}
        store.add_history({
            "case_id": case.case_id, "sequence": change.sequence, "event_type": change.event_type,
            "event_id": event["event_id"], "from_state": change.previous_state, "to_state": change.state,
            "occurred_at": change.occurred_at, "recorded_at": recorded_at, "actor_id": actor.get("id"),
            "actor_role": actor.get("role"), "caused_by": change.caused_by, "sender_user_id": sender_user_id,
            "data": history_data(change),
        })


def marked_if_late(change: Change, recorded_at: datetime) -> Change:
    """The change with data.recorded_late_hours when it is recorded more than 24 hours after it happened."""
    late = recorded_at - change.occurred_at
    if late <= RECORDED_LATE_AFTER:
        return change
    return replace(change, data={**change.data, "recorded_late_hours": round(late.total_seconds() / 3600, 2)})


def history_data(change: Change) -> dict:
    """What the history keeps of an event's data: everything but the allocated team's copy of personal details,
    and what the change keeps for the history alone (extend_clock's reason)."""
    if change.event_type == "case.allocated":
        return {k: v for k, v in change.data.items() if k not in ("child", "notifier")}
    return {**change.data, **change.history_only} if change.history_only else change.data
