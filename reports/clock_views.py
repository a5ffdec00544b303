"""`earlyhelp clocks CASE_ID`: a case's SLA clocks as a person answering "when is this due?" needs them.

Read from `sla_clocks`, which the engine keeps up to date with every transition and scan. `state` is one
word: `running`, `warning` (the warning time has passed), `overdue` (the deadline has passed and the clock
still runs, paused or not: a pause that began after the deadline does not excuse it), `paused`
(awaiting information, no deadline until it resumes), `met` or `late` (stopped before or after its
deadline). Times are ISO 8601 in UTC; `paused` is when the open pause began, or null.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from earlyhelp.persistence.tables import cases, sla_clocks

KEYS = ("stage", "started", "paused", "deadline", "warning", "state")


def clock_state(row, now: datetime) -> str:
    if row.stopped_at is not None:
        return "met" if row.due_at is not None and row.stopped_at < row.due_at else "late"
    if row.due_at is None:
        return "paused"
    if row.due_at <= now:
        return "overdue"
    if row.warning_at is not None and row.warning_at <= now:
        return "warning"
    return "paused" if _open_pause(row.pauses) else "running"


def _open_pause(pauses) -> str | None:
    last = (pauses or [None])[-1]
    return last[0] if last and last[1] is None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def case_clocks(engine, case_id: str, now: datetime) -> list[dict] | None:
    """The case's clocks in the order they started; None when no such case."""
    with engine.connect() as conn:
        if conn.execute(select(cases.c.case_id).where(cases.c.case_id == case_id)).first() is None:
            return None
        rows = conn.execute(select(sla_clocks).where(sla_clocks.c.case_id == case_id)
                            .order_by(sla_clocks.c.started_at, sla_clocks.c.id)).all()
    return [{"stage": r.stage, "started": _iso(r.started_at), "paused": _open_pause(r.pauses),
             "deadline": _iso(r.due_at), "warning": _iso(r.warning_at), "state": clock_state(r, now),
             "allowance": {"amount": r.allowance_amount, "unit": r.allowance_unit},
             "stopped": _iso(r.stopped_at)} for r in rows]
