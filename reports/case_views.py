"""What `earlyhelp cases` and `earlyhelp case ID` show: lists without personal data, one case's timeline.

Team managers' question is "what is overdue": a case is overdue when one of its SLA clocks is open
(not stopped) and its due time has passed; `--due-within` lists clocks due before now + the span.
A paused clock (awaiting information) has no due time and is neither.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select

from earlyhelp.persistence.tables import case_details, case_history, cases, sla_clocks
from earlyhelp.schemas.routing import UNASSIGNED

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)?\s*$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks", None: "days"}


def parse_span(text: str) -> timedelta:
    """'2d', '36h', '1w', '90m' (a bare number is days)."""
    match = _SPAN.match(text or "")
    if not match:
        raise ValueError(f"'{text}' is not a span like 2d, 36h, 1w or 90m")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


_open_clock = and_(sla_clocks.c.case_id == cases.c.case_id, sla_clocks.c.stopped_at.is_(None),
                   sla_clocks.c.due_at.is_not(None))


def list_cases(conn, now: datetime, *, state=None, district=None, source=None, service=None, overdue=False,
               due_within: timedelta | None = None, limit: int = 200) -> list[dict]:
    """Cases matching the filters, oldest received first, each with its next open deadline."""
    next_due = (select(func.min(sla_clocks.c.due_at)).where(_open_clock).scalar_subquery())
    query = select(cases.c.case_id, cases.c.state, cases.c.kind, cases.c.source, cases.c.priority,
                   cases.c.district, cases.c.service, cases.c.team, cases.c.received_at, cases.c.updated_at,
                   next_due.label("next_due"))
    if state:
        query = query.where(cases.c.state.in_(state))
    if district:
        query = query.where(func.lower(cases.c.district).in_([d.lower() for d in district])
                            if UNASSIGNED not in [d.lower() for d in district] else cases.c.district.is_(None))
    if source:
        query = query.where(cases.c.source.in_(source))
    if service:
        query = query.where(cases.c.service.in_(service))
    if overdue:
        query = query.where(exists().where(_open_clock, sla_clocks.c.due_at <= now))
    if due_within is not None:
        query = query.where(exists().where(_open_clock, sla_clocks.c.due_at <= now + due_within))
    query = query.order_by(cases.c.received_at, cases.c.case_id).limit(limit)
    rows = []
    for r in conn.execute(query):
        row = r._asdict()
        due = row.pop("next_due")
        if due is not None and due.tzinfo is None:  # a scalar subquery bypasses UtcDateTime on SQLite
            due = datetime.fromisoformat(str(due)).replace(tzinfo=now.tzinfo)
        row["next_due"] = due
        row["overdue"] = due is not None and due <= now
        rows.append(row)
    if rows:
        stages = _open_stages(conn, [r["case_id"] for r in rows])
        for row in rows:
            row["open_stages"] = stages.get(row["case_id"], [])
    return rows


def _open_stages(conn, case_ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    query = (select(sla_clocks.c.case_id, sla_clocks.c.stage)
             .where(sla_clocks.c.case_id.in_(case_ids), sla_clocks.c.stopped_at.is_(None)))
    for r in conn.execute(query):
        found.setdefault(r.case_id, []).append(r.stage)
    return found


def case_detail(conn, case_id: str, now: datetime, personal: bool = False) -> dict | None:
    """The case's facts, every transition from its history, and its SLA clocks; the child only if asked."""
    row = conn.execute(select(cases).where(cases.c.case_id == case_id)).first()
    if row is None:
        return None
    history = [dict(h._mapping) for h in conn.execute(
        select(case_history.c.sequence, case_history.c.event_type, case_history.c.from_state,
               case_history.c.to_state, case_history.c.occurred_at, case_history.c.recorded_at,
               case_history.c.actor_id, case_history.c.actor_role, case_history.c.caused_by,
               case_history.c.sender_user_id, case_history.c.data)
        .where(case_history.c.case_id == case_id).order_by(case_history.c.sequence))]
    clocks = []
    for c in conn.execute(select(sla_clocks).where(sla_clocks.c.case_id == case_id).order_by(sla_clocks.c.started_at)):
        clock = dict(c._mapping)
        clock["status"] = clock_status(clock, now)
        clocks.append(clock)
    detail = {"case": dict(row._mapping), "history": history, "clocks": clocks}
    if personal:
        detail["details"] = conn.execute(select(case_details.c.notification)
                                         .where(case_details.c.case_id == case_id)).scalar()
    return detail


# The timeline's words for the one judgement of a clock's state (reports/clock_views.py).
_STATUS_WORDS = {"met": "met", "late": "stopped late", "paused": "paused (awaiting information)",
                 "overdue": "OVERDUE", "warning": "due soon", "running": "running"}


def clock_status(clock: dict, now: datetime) -> str:
    from types import SimpleNamespace

    from .clock_views import clock_state

    return _STATUS_WORDS[clock_state(SimpleNamespace(**clock), now)]
