"""The SLA scanner: every EARLYHELP_SLA_SCAN_INTERVAL seconds, raises the warnings and breaches now due.

A second entry with the same tail as the handlers: due clocks → SLA events in the outbox, in the
same transaction that marks each clock warned or breached, so each is raised exactly once however
many workers scan and however often the engine restarts. On PostgreSQL each worker claims due
clocks with `FOR UPDATE SKIP LOCKED`; SQLite has one writer at a time. The scan reads
`next_check_at <= now` through a partial index: it costs what is due, not what is open.
"""
from __future__ import annotations

import threading
from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.engine import Engine

from earlyhelp import metrics
from earlyhelp.consumers.recording import EVENT_NAMESPACE, case_event, name_uuid, outbox_row
from earlyhelp.logs import get_logger
from earlyhelp.persistence.case_store import CaseStore, clock_from_row, clock_row
from earlyhelp.persistence.policy_store import PolicyWatcher
from earlyhelp.persistence.tables import sla_clocks
from earlyhelp.schemas import event_routing_key
from earlyhelp.workflows.case_flow import Change
from earlyhelp.workflows.sla_tracking import SlaTracker

log = get_logger("earlyhelp.sla")


def sla_event_id(case_id: str, event_type: str) -> str:
    """Once per case and stage and kind: the id cannot differ between two workers or two scans."""
    return name_uuid(EVENT_NAMESPACE, f"{case_id}/{event_type}")


class SlaScanner:
    def __init__(self, engine: Engine, tracker: SlaTracker, clock: Callable[[], datetime],
                 batch_size: int = 500, on_raised: Callable[[], None] | None = None,
                 policy_watcher: PolicyWatcher | None = None) -> None:
        self.engine, self.tracker, self.clock = engine, tracker, clock
        self.batch_size = batch_size
        self.on_raised = on_raised or (lambda: None)
        self.policy_watcher = policy_watcher  # each scan first picks up a policy applied since (one cheap read)

    def scan_once(self) -> int:
        """Raise what is due now, a batch at a time; returns how many events were raised."""
        if self.policy_watcher is not None:
            self.policy_watcher.refresh(force=True)
            self.policy_watcher.catch_up(self.clock())
        total = 0
        while True:
            raised = self._scan_batch(self.clock())
            total += raised
            if raised < self.batch_size:
                break
        if total:
            self.on_raised()
        return total

    def _scan_batch(self, now: datetime) -> int:
        with self.engine.begin() as conn:
            query = (select(sla_clocks).where(sla_clocks.c.next_check_at <= now)
                     .order_by(sla_clocks.c.next_check_at).limit(self.batch_size))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            if not rows:
                return 0
            store = CaseStore(conn)
            case_rows = store.load_cases_without_clocks({r.case_id for r in rows})
            changed, raised = [], 0
            for row in rows:
                clock, case = clock_from_row(row), case_rows.get(row.case_id)
                alert = self.tracker.due_alert(clock, now)
                changed.append(clock_row(row.case_id, clock))
                if alert is None or case is None:
                    continue
                change = Change(alert.event_type, case.version, case.state, None, alert.occurred_at,
                                caused_by=None, data=alert.data, is_transition=False)
                event = case_event(case, change, now, event_id=sla_event_id(case.case_id, alert.event_type))
                key = event_routing_key(alert.event_type, district=case.district)
                store.add_outbox(outbox_row(event, key, now))
                metrics.SLA_EVENTS.labels(alert.kind, alert.stage).inc()
                log.info("sla event raised", case_id=case.case_id, event_type=alert.event_type,
                         due_at=clock.due_at.isoformat())
                raised += 1
            store.update_clocks(changed)
            store.flush(now)
            return raised

    def run(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                self.scan_once()
            except Exception as error:  # noqa: BLE001 - the database may be away; the next scan retries
                log.warning("sla scan failed; retrying at the next interval", error=type(error).__name__,
                            detail=str(error)[:200])
            stop.wait(interval)
