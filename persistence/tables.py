"""The database tables: cases, their details, the append-only history, the outbox, processed ids.

Personal data lives only in `case_details`, so retention and erasure can remove it there and keep
the history and statistics, which hold none.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData,
    String, Table, Text, UniqueConstraint, text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# BIGINT autoincrement on PostgreSQL, INTEGER PRIMARY KEY (the rowid) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on both databases (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; every time carries a zone")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


cases = Table(
    "cases", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("notification_id", String(200), nullable=False),
    Column("state", String(32), nullable=False),
    Column("return_state", String(32)),
    # Optimistic concurrency: every change is UPDATE ... WHERE version = <the version read>.
    Column("version", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("source", String(32), nullable=False),
    Column("referral_source_code", String(4)),
    Column("priority", Boolean, nullable=False),
    Column("district", String(100)),
    Column("service", String(32)),
    Column("team", String(200)),
    Column("worker_id", String(200)),
    Column("school_urn", String(6)),
    Column("share_with_school", Boolean, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    # Statistics that must outlive the erasure of case_details (missing-child splits, docs/domain.md).
    Column("social_care_status", String(16)),
    Column("placed_by_other_authority", Boolean),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The field paths the open request for information named (a JSON list); null when none is open.
    Column("requested_paths", Json),
    # The school sent school.<urn>.allocated for this case: the only one told of its step-down or close.
    Column("school_informed_urn", String(6)),
    # When the latest change happened: a command issued before it is refused (time_out_of_order).
    Column("last_occurred_at", UtcDateTime),
    Index("ix_cases_state_district", "state", "district"),
    # Ids are unique per source (two sources may both send "oakwood-0001").
    UniqueConstraint("source", "notification_id", name="uq_cases_source_notification_id"),
)

case_details = Table(
    "case_details", metadata,
    Column("case_id", String(64), ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True),
    # The validated notification as JSON, updated by provide_information: the child's and notifier's details.
    Column("notification", Json, nullable=False),
)

case_history = Table(
    "case_history", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", String(64), ForeignKey("cases.case_id", ondelete="CASCADE"), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("actor_id", String(200)),
    Column("actor_role", String(100)),
    Column("caused_by", String(200), nullable=False),
    # The broker-validated AMQP user_id of the sender, when RabbitMQ was asked to check it.
    Column("sender_user_id", String(200)),
    Column("data", Json, nullable=False),
    # One transition per case version: a second worker racing for the same change fails here.
    UniqueConstraint("case_id", "sequence", name="uq_case_history_case_sequence"),
    # Reports look for the stages that started in a period.
    Index("ix_case_history_event_type_occurred_at", "event_type", "occurred_at"),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("exchange", String(200), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("headers", Json),
    Column("properties", Json),
    # A dead-letter copy must reach its queue: published mandatory and kept when the broker returns it.
    Column("mandatory", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("published_at", UtcDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    # The relay reads only what is pending; the index holds only those rows.
    Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL"),
          sqlite_where=text("published_at IS NULL")),
)

processed_messages = Table(
    "processed_messages", metadata,
    # "notification:<source>:<notification_id>", "command:<sender user_id>:<command_id>" or, from a sender
    # without user_id, "command:<command_id>" (consumers/recording.py, message_key)
    Column("message_key", String(1000), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("case_id", String(64)),
    Column("processed_at", UtcDateTime, nullable=False),
)

sla_clocks = Table(
    "sla_clocks", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", String(64), ForeignKey("cases.case_id", ondelete="CASCADE"), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("priority", Boolean, nullable=False),
    Column("allowance_amount", Integer, nullable=False),
    Column("allowance_unit", String(16), nullable=False),
    # When the starting thing happened (received_at, a command's issued_at), not when the engine saw it.
    Column("started_at", UtcDateTime, nullable=False),
    # Time awaiting information: [[paused_at, resumed_at or null], ...] as ISO strings.
    Column("pauses", Json, nullable=False),
    # Extra time granted by extend_clock, [{"amount": n, "unit": ...}, ...] (who, when and why: the history).
    Column("extensions", Json),
    # The stored SLA policy version the times were computed under (null: the file's or the shipped policy).
    Column("policy_version", Integer),
    Column("due_at", UtcDateTime),       # null while paused
    Column("warning_at", UtcDateTime),   # null while paused
    Column("stopped_at", UtcDateTime),   # when the stopping thing happened
    Column("warned_at", UtcDateTime),    # when the engine recorded sla.warning (once)
    Column("breached_at", UtcDateTime),  # when the engine recorded sla.breached (once)
    # The next moment the scanner must look at this clock; null when nothing more can fire.
    # A scan reads only `next_check_at <= now` through a partial index: it costs what is due, not what is open.
    Column("next_check_at", UtcDateTime),
    UniqueConstraint("case_id", "stage", name="uq_sla_clocks_case_stage"),
    Index("ix_sla_clocks_next_check", "next_check_at", postgresql_where=text("next_check_at IS NOT NULL"),
          sqlite_where=text("next_check_at IS NOT NULL")),
    Index("ix_sla_clocks_open_due", "due_at", postgresql_where=text("stopped_at IS NULL"),
          sqlite_where=text("stopped_at IS NULL")),
    # Open clocks computed under an older policy than the one in force (the scanner's catch-up after a pick-up).
    Index("ix_sla_clocks_open_policy", "policy_version", postgresql_where=text("stopped_at IS NULL"),
          sqlite_where=text("stopped_at IS NULL")),
)

# The SLA policy in force (`earlyhelp policy apply`): the highest version is in force for every worker, which
# reads that number cheaply (the scanner each scan, the batch processor every few seconds) and swaps its policy.
sla_policies = Table(
    "sla_policies", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("document", Text, nullable=False),       # the TOML as applied, read back with the same checks
    Column("file_name", String(1000), nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
    Column("applied_by", String(200), nullable=False),
    Column("clocks_changed", Integer, nullable=False),
    Column("cases_changed", Integer, nullable=False),
)

# -- a child's record as the law expects (issue 13; earlyhelp.records) ---------------------------------
case_identifiers = Table(
    "case_identifiers", metadata,
    # Keyed hashes (HMAC-SHA256) of the child's NHS number, UPN, and name + date of birth: found, never read.
    Column("case_id", String(64), ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("digest", String(64), nullable=False),
    Index("ix_case_identifiers_digest", "digest"),
)

disclosures = Table(
    "disclosures", metadata,
    # Every event carrying personal data, recorded when it is staged: which field paths (never values),
    # to whom (exchange and routing key), on what basis. Kept as long as the case's details.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("case_id", String(64), ForeignKey("cases.case_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("event_type", String(64), nullable=False),
    Column("exchange", String(200), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("field_paths", Json, nullable=False),
    Column("basis", String(32), nullable=False),
    Column("disclosed_at", UtcDateTime, nullable=False),
)

access_log = Table(
    "access_log", metadata,
    # Append-only: who saw personal data, when, what and why; case ids and what was shown, never the data.
    # No command updates or deletes a row (a trigger refuses it, migration 0005), erasure included.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("operator", String(200), nullable=False),
    Column("command", String(64), nullable=False),
    Column("case_id", String(64), index=True),  # no foreign key: the log outlives anything it names
    Column("shown", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

# -- a child already known, linked (issue 14; consumers/handlers.py) -----------------------------------
linked_notifications = Table(
    "linked_notifications", metadata,
    # A notification for the child of an open case, kept with that case instead of opening a second one.
    # `notification` holds its details (personal data): erased with the case (records/erasure.py). The
    # report counts links from the history's case.notification_linked rows, which erasure keeps.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", String(64), ForeignKey("cases.case_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("notification_id", String(200), nullable=False),
    Column("source", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("linked_at", UtcDateTime, nullable=False),
    Column("matched_on", Json, nullable=False),  # identifier names, never values
    Column("notification", Json, nullable=False),
    UniqueConstraint("source", "notification_id", name="uq_linked_notifications_source_notification_id"),
)
