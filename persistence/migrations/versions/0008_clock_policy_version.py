"""The policy version each SLA clock was last computed under (`sla_clocks.policy_version`): a worker that had not
yet picked up an applied policy may start or recompute a clock under the one before for a few seconds; each
worker's scanner, after picking up a new version, recomputes the open clocks computed under an older one
(a partial index on open clocks keeps that look cheap).

Revision ID: 0008
Revises: 0007
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("sla_clocks", sa.Column("policy_version", sa.Integer))
    op.create_index("ix_sla_clocks_open_policy", "sla_clocks", ["policy_version"],
                    postgresql_where=sa.text("stopped_at IS NULL"), sqlite_where=sa.text("stopped_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_sla_clocks_open_policy", table_name="sla_clocks")
    with op.batch_alter_table("sla_clocks") as batch:
        batch.drop_column("policy_version")
