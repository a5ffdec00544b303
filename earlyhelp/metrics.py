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
