"""The disclosure log: every event carrying personal data, recorded in the transaction that stages it.

A row says which event (id and type), for which case, to whom (exchange and routing key), which field
paths (never their values), on what lawful basis and when. `case.allocated` goes to the allocated team
under the authority's public task; `school.*` goes to the child's school only with the family's consent.
It proves what was sent where and why; with the outbox's publisher confirms, a staged event is sent.
Rows are kept as long as the case's details (erasure removes both).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

# Which events carry personal data, and the lawful basis the defaults assume for each.
BASES = {
    "case.allocated": "public_task",
    "school.allocated": "consent",
    "school.stepped_down": "consent",
    "school.closed": "consent",
}
# The parts of an event's data that are about a person.
PERSONAL_PARTS = ("child", "notifier")


def field_paths(data: dict) -> list[str]:
    """The paths of the personal values in an event's data, e.g. ["data.child.given_name", ...]."""
    paths: list[str] = []

    def walk(value, path: str) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key], f"{path}.{key}")
        elif value is not None:
            paths.append(path)

    for part in PERSONAL_PARTS:
        if isinstance(data, dict) and part in data:
            walk(data[part], f"data.{part}")
    return paths


def disclosure_row(event: dict, exchange: str, routing_key: str, at: datetime) -> dict | None:
    """The disclosure of an event about to be staged, or None for an event without personal data."""
    basis = BASES.get(event.get("event_type"))
    if basis is None:
        return None
    return {"event_id": event["event_id"], "case_id": event["case_id"], "event_type": event["event_type"],
            "exchange": exchange, "routing_key": routing_key, "field_paths": field_paths(event.get("data") or {}),
            "basis": basis, "disclosed_at": at}


def note_disclosure(store, event: dict, exchange: str, routing_key: str, at: datetime) -> None:
    """The hook in consumers/recording.py: record the event as a disclosure when it carries personal data."""
    row = disclosure_row(event, exchange, routing_key, at)
    if row is not None:
        store.add_disclosure(row)


def case_disclosures(conn, case_id: str) -> list[dict]:
    from earlyhelp.persistence.tables import disclosures

    rows = conn.execute(select(disclosures.c.event_id, disclosures.c.event_type, disclosures.c.exchange,
                               disclosures.c.routing_key, disclosures.c.field_paths, disclosures.c.basis,
                               disclosures.c.disclosed_at)
                        .where(disclosures.c.case_id == case_id).order_by(disclosures.c.disclosed_at,
                                                                            disclosures.c.id))
    return [dict(r._mapping) for r in rows]
