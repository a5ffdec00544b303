"""Statistics kept on the case itself, so they outlive the erasure of its details; a report index.

Missing-child splits (placed by another authority, not open to social care) move from the details
JSON to `cases`; existing rows are filled from `case_details` where it is still there.

Revision ID: 0003
Revises: 0002
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("social_care_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("placed_by_other_authority", sa.Boolean(), nullable=True))
    op.create_index("ix_case_history_event_type_occurred_at", "case_history", ["event_type", "occurred_at"])
    details = sa.table("case_details", sa.column("case_id", sa.String), sa.column("notification", sa.JSON))
    cases = sa.table("cases", sa.column("case_id", sa.String), sa.column("social_care_status", sa.String),
                     sa.column("placed_by_other_authority", sa.Boolean))
    connection = op.get_bind()
    rows = connection.execute(sa.select(details.c.case_id, details.c.notification)).all()
    updates = [{"b_id": case_id, "b_status": (n or {}).get("social_care_status"),
                "b_placed": bool(((n or {}).get("child") or {}).get("placing_authority"))} for case_id, n in rows]
    if updates:
        connection.execute(
            cases.update().where(cases.c.case_id == sa.bindparam("b_id"))
            .values(social_care_status=sa.bindparam("b_status"), placed_by_other_authority=sa.bindparam("b_placed")),
            updates)


def downgrade() -> None:
    op.drop_index("ix_case_history_event_type_occurred_at", table_name="case_history")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("placed_by_other_authority")
        batch.drop_column("social_care_status")
