"""Reads the rows the report's pure functions need from the database: a thin layer, no arithmetic.

Everything comes from `cases` and `case_history`, which hold no personal data and outlive the
erasure of `case_details`.
"""
from __future__ import annotations

from datetime import datetime

from datetime import timedelta

from sqlalchemy import and_, func, or_, select

from earlyhelp.persistence.tables import case_history, cases
from earlyhelp.workflows.sla_policy import STAGES, SlaPolicy

from earlyhelp.schemas.routing import UNASSIGNED

from .figures import (
    EXTENDED_EVENT, RECORDED_LATE_AFTER, UNALLOCATED_STATES, CaseRow, ExtensionRow, HistoryRow, LateChange, LinkRow,
    Period, build_report,
)

def _case_query():
    return select(cases.c.case_id, cases.c.kind, cases.c.source, cases.c.priority, cases.c.state,
                  cases.c.received_at, cases.c.district, cases.c.service, cases.c.social_care_status.label("status"),
                  cases.c.placed_by_other_authority.label("placed"))


def _case_row(row) -> CaseRow:
    return CaseRow(case_id=row.case_id, kind=row.kind, source=row.source, priority=bool(row.priority),
                   state=row.state, received_at=row.received_at, district=row.district, service=row.service,
                   social_care_status=row.status if row.kind == "missing_child" else None,
                   placing_authority=bool(row.placed) if row.kind == "missing_child" else False)


def cases_received(conn, period: Period) -> list[CaseRow]:
    query = _case_query().where(cases.c.received_at >= period.start, cases.c.received_at < period.end)
    return [_case_row(r) for r in conn.execute(query)]


def earliest_received(conn) -> datetime | None:
    return conn.execute(select(cases.c.received_at).order_by(cases.c.received_at).limit(1)).scalar()


def stage_cases_and_history(conn, period: Period, policy: SlaPolicy) -> tuple[list[CaseRow], dict]:
    """Cases received in the period or with a stage-starting transition in it, with their history."""
    starts = {policy.stages[s].start_on for s in STAGES}
    started_in_period = (select(case_history.c.case_id)
                         .where(case_history.c.event_type.in_(starts),
                                case_history.c.occurred_at >= period.start, case_history.c.occurred_at < period.end))
    query = _case_query().where(or_(and_(cases.c.received_at >= period.start, cases.c.received_at < period.end),
                                    cases.c.case_id.in_(started_in_period)))
    rows = [_case_row(r) for r in conn.execute(query)]
    return rows, history_of(conn, [r.case_id for r in rows])


def history_of(conn, case_ids: list[str]) -> dict[str, list[HistoryRow]]:
    history: dict[str, list[HistoryRow]] = {case_id: [] for case_id in case_ids}
    # Chunks keep the IN list within SQLite's parameter limit.
    for i in range(0, len(case_ids), 500):
        chunk = case_ids[i:i + 500]
        query = (select(case_history.c.case_id, case_history.c.sequence, case_history.c.event_type,
                        case_history.c.occurred_at, case_history.c.recorded_at, case_history.c.data)
                 .where(case_history.c.case_id.in_(chunk)).order_by(case_history.c.case_id, case_history.c.sequence))
        for r in conn.execute(query):
            # Only the close reason and an extension's extra time are used (never extend_clock's reason).
            data = r.data if r.event_type == "case.closed" else \
                {"extra": (r.data or {}).get("extra")} if r.event_type.startswith(EXTENDED_EVENT) else {}
            history[r.case_id].append(HistoryRow(r.case_id, r.sequence, r.event_type, r.occurred_at,
                                                 r.recorded_at, data or {}))
    return history


def late_changes(conn, period: Period) -> list[LateChange]:
    """Changes that happened in the period and were recorded more than 24 hours later (figures.recorded_late
    applies the rule again; the database only keeps the rows read few)."""
    if conn.dialect.name == "sqlite":
        late = func.julianday(case_history.c.recorded_at) - func.julianday(case_history.c.occurred_at) > \
            RECORDED_LATE_AFTER / timedelta(days=1)
    else:
        late = case_history.c.recorded_at - case_history.c.occurred_at > RECORDED_LATE_AFTER
    query = (select(case_history.c.case_id, case_history.c.event_type, case_history.c.occurred_at,
                    case_history.c.recorded_at, cases.c.district)
             .join(cases, cases.c.case_id == case_history.c.case_id)
             .where(case_history.c.occurred_at >= period.start, case_history.c.occurred_at < period.end, late))
    return [LateChange(r.case_id, r.event_type, r.occurred_at, r.recorded_at, r.district) for r in conn.execute(query)]


def clock_extensions(conn, period: Period) -> list[ExtensionRow]:
    """The extend_clock commands that happened in the period, with their case's district."""
    query = (select(case_history.c.case_id, case_history.c.event_type, case_history.c.occurred_at,
                    case_history.c.data, cases.c.district)
             .join(cases, cases.c.case_id == case_history.c.case_id)
             .where(case_history.c.event_type.in_([EXTENDED_EVENT + s for s in STAGES]),
                    case_history.c.occurred_at >= period.start, case_history.c.occurred_at < period.end))
    return [ExtensionRow(r.case_id, r.event_type.removeprefix(EXTENDED_EVENT), r.data["extra"]["amount"],
                         r.data["extra"]["unit"], r.occurred_at, r.district)
            for r in conn.execute(query) if "extra" in (r.data or {})]


def links_and_re_referrals(conn, period: Period) -> tuple[list[LinkRow], set[str]]:
    """Notifications linked to an open case in the period (case.notification_linked, received then), and the
    cases received in the period whose case.received names previous cases (re-referrals)."""
    linked = (select(case_history.c.case_id, case_history.c.occurred_at, case_history.c.data, cases.c.district)
              .join(cases, cases.c.case_id == case_history.c.case_id)
              .where(case_history.c.event_type == "case.notification_linked",
                     case_history.c.occurred_at >= period.start, case_history.c.occurred_at < period.end))
    links = [LinkRow(r.case_id, r.occurred_at, r.data["source"], r.data["kind"], tuple(r.data["matched_on"]),
                     r.district) for r in conn.execute(linked)]
    received = (select(case_history.c.case_id, case_history.c.data)
                .join(cases, cases.c.case_id == case_history.c.case_id)
                .where(case_history.c.event_type == "case.received",
                       cases.c.received_at >= period.start, cases.c.received_at < period.end))
    return links, {r.case_id for r in conn.execute(received) if (r.data or {}).get("previous_case_ids")}


def open_unallocated(conn) -> list[CaseRow]:
    return [_case_row(r) for r in conn.execute(_case_query().where(cases.c.state.in_(UNALLOCATED_STATES)))]


def load_report(engine, period: Period, policy: SlaPolicy, districts: list[str], as_of: datetime,
                district: str | None = None) -> dict:
    """Read what the report needs in one read-only transaction and compute it."""
    with engine.connect() as conn:
        received = cases_received(conn, period)
        earliest = earliest_received(conn)
        before = period.year_before()
        # "Where data exists": last year's figure only when the records reach back into that period.
        previous = cases_received(conn, before) if earliest is not None and earliest < before.end else None
        stage_cases, history = stage_cases_and_history(conn, period, policy)
        open_cases = open_unallocated(conn)
        late = late_changes(conn, period)
        extended = clock_extensions(conn, period)
        links, re_referred = links_and_re_referrals(conn, period)
    return build_report(period=period, cases=received, stage_cases=stage_cases, history=history,
                        previous_cases=previous, open_cases=open_cases, policy=policy, districts=districts,
                        as_of=as_of, district=district, late_changes=late, clock_extensions=extended, links=links,
                        re_referred=re_referred)


def notification_sources(engine, period: Period, district: str | None = None) -> list:
    """Each notification received in the period with its source, kind and census code, for the CIN export."""
    from .cin_sources import NotificationSource

    query = (select(cases.c.case_id, cases.c.notification_id, cases.c.received_at, cases.c.source, cases.c.kind,
                    cases.c.referral_source_code, cases.c.district)
             .where(cases.c.received_at >= period.start, cases.c.received_at < period.end))
    with engine.connect() as conn:
        found = conn.execute(query).all()
    return [NotificationSource(r.case_id, r.notification_id, r.received_at, r.source, r.kind, r.referral_source_code)
            for r in found if district is None or (r.district or UNASSIGNED) == district]


def open_clocks(engine) -> list:
    """Every SLA clock still running, with its case's district, for `earlyhelp policy check`."""
    from earlyhelp.persistence.tables import sla_clocks
    from earlyhelp.workflows.policy_check import OpenClock
    from earlyhelp.workflows.sla_clock import Extension, Pause

    query = (select(sla_clocks.c.stage, sla_clocks.c.priority, sla_clocks.c.started_at, sla_clocks.c.pauses,
                    sla_clocks.c.extensions, cases.c.district)
             .join(cases, cases.c.case_id == sla_clocks.c.case_id).where(sla_clocks.c.stopped_at.is_(None)))
    with engine.connect() as conn:
        found = conn.execute(query).all()
    return [OpenClock(r.stage, bool(r.priority), r.started_at,
                      tuple(Pause(_instant(a), _instant(b)) for a, b in (r.pauses or [])), r.district or UNASSIGNED,
                      tuple(Extension(e["amount"], e["unit"]) for e in (r.extensions or [])))
            for r in found]


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
