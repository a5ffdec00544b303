"""A child's record as the law expects (issue 13): identifier hashes, disclosures, the access log.

- `case_identifiers`: keyed hashes of each case's child identifiers (NHS number, UPN, name + date of
  birth), filled here for the cases already stored (the key from EARLYHELP_PSEUDONYM_KEY or its file).
- `disclosures`: every event carrying personal data, by field path, recipient and basis.
- `access_log`: who saw personal data, append-only; a trigger refuses UPDATE and DELETE (on SQLite too).

Revision ID: 0005
Revises: 0004
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from earlyhelp.persistence.tables import Id, Json, UtcDateTime

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_REFUSE = """
CREATE OR REPLACE FUNCTION earlyhelp_access_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "case_identifiers",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id", ondelete="CASCADE",
                                                          name="fk_case_identifiers_case_id_cases"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "kind", name="pk_case_identifiers"),
    )
    op.create_index("ix_case_identifiers_digest", "case_identifiers", ["digest"])
    op.create_table(
        "disclosures",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id", ondelete="CASCADE",
                                                          name="fk_disclosures_case_id_cases"), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("exchange", sa.String(200), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("field_paths", Json, nullable=False),
        sa.Column("basis", sa.String(32), nullable=False),
        sa.Column("disclosed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_disclosures"),
        sa.UniqueConstraint("event_id", name="uq_disclosures_event_id"),
    )
    op.create_index("ix_disclosures_case_id", "disclosures", ["case_id"])
    op.create_table(
        "access_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(64)),
        sa.Column("shown", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_log"),
    )
    op.create_index("ix_access_log_case_id", "access_log", ["case_id"])
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        op.execute(_REFUSE)
        op.execute("CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log "
                   "FOR EACH STATEMENT EXECUTE FUNCTION earlyhelp_access_log_append_only()")
    else:  # SQLite: the same refusal, row by row
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER access_log_no_{operation.lower()} BEFORE {operation} ON access_log "
                       f"BEGIN SELECT RAISE(ABORT, 'access_log is append-only: {operation} refused'); END")
    _fill_identifiers(connection)


def _fill_identifiers(connection) -> None:
    from earlyhelp.records.pseudonyms import identifier_rows, pseudonym_key

    details = sa.table("case_details", sa.column("case_id", sa.String), sa.column("notification", Json))
    identifiers = sa.table("case_identifiers", sa.column("case_id", sa.String), sa.column("kind", sa.String),
                           sa.column("digest", sa.String))
    if connection.execute(sa.select(sa.func.count()).select_from(details)).scalar_one() == 0:
        return  # a new database: no key needed yet
    key = pseudonym_key(connection.engine.url.render_as_string(hide_password=True))
    rows: list[dict] = []
    for case_id, notification in connection.execute(sa.select(details.c.case_id, details.c.notification)):
        rows += identifier_rows(key, case_id, notification)
        if len(rows) >= 5000:
            connection.execute(identifiers.insert(), rows)
            rows = []
    if rows:
        connection.execute(identifiers.insert(), rows)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS access_log_append_only ON access_log")
        op.execute("DROP FUNCTION IF EXISTS earlyhelp_access_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS access_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS access_log_no_delete")
    op.drop_index("ix_access_log_case_id", table_name="access_log")
    op.drop_table("access_log")
    op.drop_index("ix_disclosures_case_id", table_name="disclosures")
    op.drop_table("disclosures")
    op.drop_index("ix_case_identifiers_digest", table_name="case_identifiers")
    op.drop_table("case_identifiers")
