"""Ids per source, and what the case must remember for its trust rules (issue 11).

- `cases`: notification ids are unique per source, not overall; new columns `requested_paths` (what
  the open request for information named), `school_informed_urn` (the school told of the allocation)
  and `last_occurred_at` (when the latest change happened), filled for existing cases from their history.
- `processed_messages`: keys become "notification:<source>:<id>" and, where the history knows the
  command's sender, "command:<user_id>:<id>", so a repeat of a message stored before still counts as a
  repeat. Existing cases keep their case ids.

Revision ID: 0004
Revises: 0003
"""
from typing import Sequence, Union
from urllib.parse import quote

import sqlalchemy as sa
from alembic import op

from earlyhelp.persistence.tables import Json, UtcDateTime

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_NOTIFICATION, _COMMAND = "notification:", "command:"
_SCHOOL_TOLD_STATES = ("allocated", "assessed", "stepped_down")


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_constraint("uq_cases_notification_id", type_="unique")
        batch.create_unique_constraint("uq_cases_source_notification_id", ["source", "notification_id"])
        batch.add_column(sa.Column("requested_paths", Json, nullable=True))
        batch.add_column(sa.Column("school_informed_urn", sa.String(length=6), nullable=True))
        batch.add_column(sa.Column("last_occurred_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("processed_messages") as batch:
        batch.alter_column("message_key", type_=sa.String(length=1000), existing_type=sa.String(length=220),
                           existing_nullable=False)
    connection = op.get_bind()
    _fill_cases(connection)
    _rewrite_processed_keys(connection)


def _fill_cases(connection) -> None:
    cases = sa.table("cases", sa.column("case_id", sa.String), sa.column("state", sa.String),
                     sa.column("school_urn", sa.String), sa.column("share_with_school", sa.Boolean),
                     sa.column("school_informed_urn", sa.String), sa.column("last_occurred_at", UtcDateTime()),
                     sa.column("requested_paths", Json))
    history = sa.table("case_history", sa.column("case_id", sa.String), sa.column("sequence", sa.Integer),
                       sa.column("event_type", sa.String), sa.column("occurred_at", UtcDateTime()),
                       sa.column("data", Json))
    latest = (sa.select(sa.func.max(history.c.occurred_at)).where(history.c.case_id == cases.c.case_id)
              .scalar_subquery())
    rows = connection.execute(sa.select(cases.c.case_id, latest.label("latest"))).all()
    # A scalar subquery bypasses UtcDateTime on SQLite (a string comes back): set each through the type.
    updates = [{"b_id": case_id, "b_at": _aware(at)} for case_id, at in rows if at is not None]
    if updates:
        connection.execute(cases.update().where(cases.c.case_id == sa.bindparam("b_id"))
                           .values(last_occurred_at=sa.bindparam("b_at")), updates)
    # The school was told of the allocation where the case was allocated with consent to share and a school
    # known (the only way school.<urn>.allocated was sent before this revision).
    connection.execute(cases.update()
                       .where(cases.c.state.in_(_SCHOOL_TOLD_STATES), cases.c.share_with_school.is_(True),
                              cases.c.school_urn.is_not(None))
                       .values(school_informed_urn=cases.c.school_urn))
    # The open request of a case awaiting information is its latest case.information_requested.
    waiting = connection.execute(
        sa.select(history.c.case_id, history.c.sequence, history.c.data)
        .where(history.c.event_type == "case.information_requested",
               history.c.case_id.in_(sa.select(cases.c.case_id).where(cases.c.state == "awaiting_information")))
        .order_by(history.c.case_id, history.c.sequence)).all()
    requested = {case_id: list((data or {}).get("missing") or []) for case_id, _, data in waiting}
    if requested:
        connection.execute(cases.update().where(cases.c.case_id == sa.bindparam("b_id"))
                           .values(requested_paths=sa.bindparam("b_paths")),
                           [{"b_id": k, "b_paths": v} for k, v in requested.items()])


def _rewrite_processed_keys(connection) -> None:
    processed = sa.table("processed_messages", sa.column("message_key", sa.String), sa.column("case_id", sa.String))
    cases = sa.table("cases", sa.column("case_id", sa.String), sa.column("source", sa.String))
    history = sa.table("case_history", sa.column("case_id", sa.String), sa.column("caused_by", sa.String),
                       sa.column("sender_user_id", sa.String))
    # Notifications: one statement; every processed notification opened a case, whose source is known.
    source = sa.select(cases.c.source).where(cases.c.case_id == processed.c.case_id).scalar_subquery()
    connection.execute(
        processed.update()
        .where(processed.c.message_key.like(_NOTIFICATION + "%"),
               processed.c.case_id.in_(sa.select(cases.c.case_id)))
        .values(message_key=sa.literal(_NOTIFICATION) + source + sa.literal(":")
                + sa.func.substr(processed.c.message_key, len(_NOTIFICATION) + 1)))
    # Commands: only those whose history names a sender (few: submit and command did not set user_id).
    command_id = sa.func.substr(processed.c.message_key, len(_COMMAND) + 1)
    senders = connection.execute(
        sa.select(processed.c.message_key, sa.func.min(history.c.sender_user_id))
        .join(history, sa.and_(history.c.case_id == processed.c.case_id, history.c.caused_by == command_id))
        .where(processed.c.message_key.like(_COMMAND + "%"), history.c.sender_user_id.is_not(None))
        .group_by(processed.c.message_key)).all()
    if senders:
        connection.execute(
            processed.update().where(processed.c.message_key == sa.bindparam("b_key"))
            .values(message_key=sa.bindparam("b_new")),
            [{"b_key": key, "b_new": f"{_COMMAND}{quote(user, safe='')}:{key[len(_COMMAND):]}"}
             for key, user in senders])


def _aware(value):
    from datetime import datetime, timezone

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def downgrade() -> None:
    processed = sa.table("processed_messages", sa.column("message_key", sa.String))
    connection = op.get_bind()
    # Notification keys back to "notification:<id>" (the source never holds a colon). Command keys are left
    # as they are: "command:<user>:<id>" cannot be told from an id holding a colon. The older code would take
    # a repeat of such a command as new: downgrade with the engine stopped and its input queues empty.
    rows = connection.execute(sa.select(processed.c.message_key)
                              .where(processed.c.message_key.like(_NOTIFICATION + "%"))).scalars().all()
    updates = [{"b_key": key, "b_new": _NOTIFICATION + key[len(_NOTIFICATION):].split(":", 1)[-1]} for key in rows]
    if updates:
        connection.execute(processed.update().where(processed.c.message_key == sa.bindparam("b_key"))
                           .values(message_key=sa.bindparam("b_new")), updates)
    with op.batch_alter_table("processed_messages") as batch:
        batch.alter_column("message_key", type_=sa.String(length=220), existing_type=sa.String(length=1000),
                           existing_nullable=False)
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("last_occurred_at")
        batch.drop_column("school_informed_urn")
        batch.drop_column("requested_paths")
        batch.drop_constraint("uq_cases_source_notification_id", type_="unique")
        batch.create_unique_constraint("uq_cases_notification_id", ["notification_id"])
