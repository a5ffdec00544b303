"""A child already known, linked (issue 14): `linked_notifications`, the notifications kept with the open case
of the same child instead of opening a second case (their details are personal data, erased with the case).

Revision ID: 0006
Revises: 0005
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from earlyhelp.persistence.tables import Id, Json, UtcDateTime

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "linked_notifications",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id", ondelete="CASCADE",
                                                          name="fk_linked_notifications_case_id_cases"),
                  nullable=False),
        sa.Column("notification_id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("linked_at", UtcDateTime, nullable=False),
        sa.Column("matched_on", Json, nullable=False),
        sa.Column("notification", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_linked_notifications"),
        sa.UniqueConstraint("source", "notification_id", name="uq_linked_notifications_source_notification_id"),
    )
    op.create_index("ix_linked_notifications_case_id", "linked_notifications", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_linked_notifications_case_id", table_name="linked_notifications")
    op.drop_table("linked_notifications")
