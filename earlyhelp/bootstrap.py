"""The composition root: settings in, a wired engine out. The one place the engine's parts are built.

    settings → database engine → SLA policy and tracker → senders policy → flow (command table, clocks,
    senders) → batch processor → outbox relay → SLA scanner → EngineRuntime, which only runs them.

`serve`, the demo and the tests' RunningEngine all start the engine through `bootstrap`; a bad SLA policy or
senders file raises here (PolicyError, SendersError), before anything connects.
"""
from __future__ import annotations

import threading
from datetime import datetime
from functools import partial
from typing import Callable

from earlyhelp.clock import utc_now
from earlyhelp.config import Settings
from earlyhelp.consumers.batch import BatchProcessor
from earlyhelp.consumers.runtime import EngineRuntime, EngineStatus, broker_connection, redeclare_topology
from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.policy_store import PolicyWatcher
from earlyhelp.producers.outbox_relay import OutboxRelay
from earlyhelp.timers.sla_scanner import SlaScanner
from earlyhelp.workflows.case_flow import CaseFlow
from earlyhelp.workflows.senders import load_senders
from earlyhelp.workflows.sla_policy import load_policy
from earlyhelp.workflows.sla_tracking import SlaTracker

# How often a worker's batch processor looks for a newly applied SLA policy (one primary-key read).
POLICY_CHECK_SECONDS = 5.0


def bootstrap(settings: Settings, clock: Callable[[], datetime] = utc_now, *, migrate_on_start: bool = True,
              case_gauges: bool = False,
              extra_threads: list[Callable[[threading.Event], None]] | None = None) -> EngineRuntime:
    """Build the engine `settings` describe, on `clock`; `case_gauges`: refresh /metrics' case gauges (serve)."""
    db = make_engine(settings.database_url)
    # The SLA policy and the senders file are read here, at start, so a bad one stops `serve` with its reason;
    # without a senders file the engine is open, and says so when it runs.
    sla = SlaTracker(load_policy(settings.sla_policy))
    # A policy applied with `earlyhelp policy apply` (stored, by version) replaces it once the database is read,
    # and a later one without a restart: the scanner looks every scan, the processor every few seconds.
    policy_watcher = PolicyWatcher(db, sla, interval=POLICY_CHECK_SECONDS)
    senders = load_senders(settings.senders, settings.district_names)
    flow = CaseFlow(sla=sla, senders=senders)
    status = EngineStatus()
    connect = partial(broker_connection, settings.broker_url, settings.broker_ca_file)
    processor = BatchProcessor(db, clock, settings.district_names, flow=flow,
                               on_database_state=status.database_state, should_stop=status.stopping.is_set,
                               sleep=status.patient_sleep, before_batch=policy_watcher.refresh)
    relay = OutboxRelay(db, connect, clock, on_return=redeclare_topology, on_database_state=status.database_state)
    scanner = SlaScanner(db, sla, clock, on_raised=relay.wake.set, policy_watcher=policy_watcher)
    scan = partial(scanner.run, interval=settings.sla_scan_interval)
    scan.__name__ = "sla-scanner"
    threads = [scan]
    if case_gauges:
        from earlyhelp.metrics import refresh_case_gauges

        # Cases by state and overdue clocks, read from the database for /metrics every 15 s.
        gauges = partial(refresh_case_gauges, db, interval=15.0)
        gauges.__name__ = "case-gauges"
        threads.append(gauges)
    return EngineRuntime(settings, clock, status=status, db=db, processor=processor, relay=relay, scanner=scanner,
                         senders=senders, connect=connect, migrate_on_start=migrate_on_start,
                         extra_threads=[*threads, *(extra_threads or [])])
