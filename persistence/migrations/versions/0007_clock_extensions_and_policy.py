"""Clocks managed, policies tried first (issue 14 items 3-4): `sla_clocks.extensions` (the extra time extend_clock
granted, kept through every recompute) and `sla_policies` (the SLA policy in force, by version, `earlyhelp policy
apply`; the highest version is in force for every worker).

Revision ID: 0007
Revises: 0006
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from earlyhelp.persistence.tables import Json, UtcDateTime

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # A nullable column needs no table copy on SQLite (ALTER TABLE ADD COLUMN), and no rewrite on PostgreSQL.
    op.add_column("sla_clocks", sa.Column("extensions", Json))
    op.create_table(
        "sla_policies",
        sa.Column("version", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("file_name", sa.String(1000), nullable=False),
        sa.Column("applied_at", UtcDateTime, nullable=False),
        sa.Column("applied_by", sa.String(200), nullable=False),
        sa.Column("clocks_changed", sa.Integer, nullable=False),
        sa.Column("cases_changed", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_sla_policies"),
    )


def downgrade() -> None:
    op.drop_table("sla_policies")
    with op.batch_alter_table("sla_clocks") as batch:
        batch.drop_column("extensions")
