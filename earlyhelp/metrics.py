"""Prometheus metrics the engine exposes at /metrics. Names are part of what operators build on."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("earlyhelp_messages_total", "Messages handled, by input and outcome", ["input", "outcome"])
REFUSALS = Counter("earlyhelp_refusals_total", "Messages refused, by input and reason class", ["input", "reason"])
REPEATS = Counter("earlyhelp_repeats_total", "Exact repeats acknowledged without effect", ["input"])
HANDLING_SECONDS = Histogram(
    "earlyhelp_batch_seconds", "Time to handle one batch of deliveries in one transaction",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram("earlyhelp_batch_size", "Deliveries per batch", buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
RETRIES = Counter("earlyhelp_batch_retries_total", "Batches retried, by cause", ["cause"])
EVENTS_PUBLISHED = Counter("earlyhelp_outbox_published_total", "Outbox rows published with a broker confirm")
OUTBOX_BACKLOG = Gauge("earlyhelp_outbox_backlog", "Outbox rows waiting to be published")
OUTBOX_OLDEST_SECONDS = Gauge("earlyhelp_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")
CASES_BY_STATE = Gauge("earlyhelp_cases", "Cases by state", ["state"])
SLA_EVENTS = Counter("earlyhelp_sla_events_total", "SLA warnings and breaches raised", ["kind", "stage"])
BROKER_CONNECTED = Gauge("earlyhelp_broker_connected", "1 while the engine holds its broker connection")
DATABASE_UP = Gauge("earlyhelp_database_up", "1 while the last database transaction succeeded")
BROKER_BLOCKED = Gauge("earlyhelp_broker_blocked", "1 while the broker blocks the relay's publishes (memory or disk alarm)")
SLA_OVERDUE = Gauge("earlyhelp_sla_overdue", "Open SLA clocks past their due time, by stage", ["stage"])
GAUGES_REFRESHED = Gauge("earlyhelp_case_gauges_refreshed_timestamp_seconds",
                         "When the case gauges were last read from the database (Unix time)")


def refresh_case_gauges(engine, stop_event, interval: float = 30.0) -> None:
    """Every `interval` seconds until `stop_event` is set: cases by state, overdue clocks and the outbox
    backlog, from the database.

    Run it in a thread beside the engine (runtime extra_threads: partial(refresh_case_gauges, db, interval=..)).
    A failed read leaves the last values and tries again next time: a gauge is never worth a crash.
    Every known state is set, zeros included, so a state that empties drops to 0 instead of going stale.
    """
    import time

    from sqlalchemy import func, select

    from earlyhelp.clock import utc_now
    from earlyhelp.persistence.case_store import pending_outbox
    from earlyhelp.persistence.tables import cases, sla_clocks
    from earlyhelp.schemas import CASE_STATES, SLA_STAGES

    while True:
        try:
            with engine.connect() as conn:
                by_state = dict(conn.execute(select(cases.c.state, func.count()).group_by(cases.c.state)).all())
                overdue = dict(conn.execute(
                    select(sla_clocks.c.stage, func.count())
                    .where(sla_clocks.c.stopped_at.is_(None), sla_clocks.c.due_at <= utc_now())
                    .group_by(sla_clocks.c.stage)).all())
                backlog, oldest = pending_outbox(conn)
            OUTBOX_BACKLOG.set(backlog)
            OUTBOX_OLDEST_SECONDS.set((utc_now() - oldest).total_seconds() if oldest else 0)
            for state in set(CASE_STATES) | set(by_state):
                CASES_BY_STATE.labels(state).set(by_state.get(state, 0))
            for stage in set(SLA_STAGES) | set(overdue):
                SLA_OVERDUE.labels(stage).set(overdue.get(stage, 0))
            GAUGES_REFRESHED.set(time.time())
        except Exception:  # noqa: BLE001 - database away: keep the last values, retry next interval
            pass
        if stop_event.wait(interval):
            return
