"""`earlyhelp status NOTIFICATION_ID --source SOURCE`: what became of one referral, as its referrer was told.

The story is drawn from the case's history through the same table that makes the referrer's events
(workflows/referrers.py), so the person answering a school's "what happened to my referral?" says what the
school's own system heard: received, information requested, decided, allocated, closed; or, for a
notification linked to a case already open for the child, that it was linked, and nothing after. No personal
data: ids, dates, the service, district and team, the close reason.
"""
from __future__ import annotations

from sqlalchemy import select

from earlyhelp.consumers.recording import notification_key
from earlyhelp.persistence.tables import case_history, cases, processed_messages
from earlyhelp.workflows.referrers import notice


def referrer_story(conn, source: str, notification_id: str) -> dict | None:
    """{"notification_id", "source", "case_id", "linked", "told": [{"event", "at", "data"}]}, or None when the
    engine holds no notification `notification_id` from `source` (never received, or refused)."""
    case_id = conn.execute(select(processed_messages.c.case_id).where(
        processed_messages.c.message_key == notification_key(source, notification_id))).scalar()
    if case_id is None:  # a case opened before ids were recorded per source
        case_id = conn.execute(select(cases.c.case_id).where(
            cases.c.source == source, cases.c.notification_id == notification_id)).scalar()
    case = conn.execute(select(cases.c.source, cases.c.notification_id).where(cases.c.case_id == case_id)).first() \
        if case_id else None
    if case is None:
        return None
    rows = conn.execute(select(case_history.c.event_type, case_history.c.from_state, case_history.c.occurred_at,
                               case_history.c.data)
                        .where(case_history.c.case_id == case_id).order_by(case_history.c.sequence))
    told = []
    for row in rows:
        heard = notice(row.event_type, row.data or {}, row.from_state, case.source, case.notification_id)
        if heard is not None and heard[:2] == (source, notification_id):
            told.append({"event": heard[2], "at": row.occurred_at.isoformat(), "data": heard[3]})
    linked = (case.source, case.notification_id) != (source, notification_id)
    return {"notification_id": notification_id, "source": source, "case_id": case_id, "linked": linked,
            "told": told}


def story_lines(story: dict) -> list[str]:
    """The story as lines for a person on the phone (printed escaped by the CLI)."""
    lines = [f"notification {story['notification_id']} from {story['source']}: "
             + (f"linked to case {story['case_id']}, already open for the child" if story["linked"]
                else f"case {story['case_id']}")]
    for step in story["told"]:
        lines.append(f"  {step['at'][:16].replace('T', ' ')} UTC  {_said(step['event'], step['data'])}")
    if story["linked"]:
        lines.append("  (what happens next is told to the case's own referrer)")
    return lines


def _said(event: str, data: dict) -> str:
    if event == "received":
        return "received: a case was opened"
    if event == "linked":
        return "linked to the case already open for the child"
    if event == "information_requested":
        return "information requested: " + (", ".join(data.get("missing") or []) or "-")
    if event == "decided":
        return f"decided at triage: {data['service'].replace('_', ' ')}, {data['district']}"
    if event == "allocated":
        return f"allocated to {data['team']}"
    if event == "closed":
        return f"closed: {data['reason'].replace('_', ' ')}" + (" (after stepping down)" if data["stepped_down"] else "")
    return event
