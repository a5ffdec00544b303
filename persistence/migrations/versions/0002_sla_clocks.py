"""SLA clocks: one row per case and stage, with due and warning times and a scanner index.

Revision ID: 0002
Revises: 0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from earlyhelp.persistence.tables import UtcDateTime

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Boolean(), nullable=False),
        sa.Column("allowance_amount", sa.Integer(), nullable=False),
        sa.Column("allowance_unit", sa.String(length=16), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("pauses", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                  nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=True),
        sa.Column("warning_at", UtcDateTime(), nullable=True),
        sa.Column("stopped_at", UtcDateTime(), nullable=True),
        sa.Column("warned_at", UtcDateTime(), nullable=True),
        sa.Column("breached_at", UtcDateTime(), nullable=True),
        sa.Column("next_check_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name=op.f("fk_sla_clocks_case_id_cases"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_clocks")),
        sa.UniqueConstraint("case_id", "stage", name="uq_sla_clocks_case_stage"),
    )
    op.create_index("ix_sla_clocks_next_check", "sla_clocks", ["next_check_at"], unique=False,
                    postgresql_where=sa.text("next_check_at IS NOT NULL"),
                    sqlite_where=sa.text("next_check_at IS NOT NULL"))
    op.create_index("ix_sla_clocks_open_due", "sla_clocks", ["due_at"], unique=False,
                    postgresql_where=sa.text("stopped_at IS NULL"), sqlite_where=sa.text("stopped_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_sla_clocks_open_due", table_name="sla_clocks")
    op.drop_index("ix_sla_clocks_next_check", table_name="sla_clocks")
    op.drop_table("sla_clocks")
