"""Erasure: remove a case's personal data everywhere the engine keeps it, keep what the reports need.

Removed (one transaction): the case's details (`case_details`: the notification as provided, the
child's and notifier's details and free text), the notifications linked to it (`linked_notifications`,
issue 14, where that table exists), its identifier hashes, its disclosure rows (kept as
long as the details, docs/contract.md), its events that carry personal data still in the outbox
(`case.allocated`, `school.*`: bodies stored as bytes), and dead-letter copies still in the outbox that
name the case. Then, on the broker, copies in `earlyhelp.dead-letter` naming the case (the CLI does this
through the dead-letter queue session, removing only the copies it names).

The history keeps no personal data but one free-text field, extend_clock's reason (a manager's words,
which may name the child): it is replaced by "[erased]".

Kept: `cases` (source, kind, district, service, team, dates, states, the statistics columns), the
history (which holds no personal data once the reasons are replaced) with a `case.erased` row, clocks, processed ids, and the access
log (which names cases, never their data). So the report's figures are the same before and after.

A copy "names the case" when its body carries the case id, or is the case's notification (its source
and notification_id), or carries the child's NHS number or UPN, or the child's name and date of birth.
Only a closed case is erased: an open case still needs its details for the commands to come.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, func, select, update

from .disclosures import BASES
from .pseudonyms import normal_name, normal_nhs_number, normal_upn

ERASED_EVENT = "case.erased"
ERASED_TEXT = "[erased]"  # what is left of a free-text field in the history


class UnknownCase(LookupError):
    pass


class CaseStillOpen(ValueError):
    pass


@dataclass
class MatchTerms:
    """What identifies the case in a stored body, gathered before the details are removed: the case id, its
    notification's (and any linked notification's) source and id, and their children's identifiers."""

    case_id: str
    notifications: set[tuple[str, str]] = field(default_factory=set)   # (source, notification_id)
    name_dobs: set[tuple[str, str]] = field(default_factory=set)
    literals: set[bytes] = field(default_factory=set)

    @classmethod
    def of(cls, case_id: str, source: str, notification_id: str, notification: dict | None) -> "MatchTerms":
        terms = cls(case_id, literals={case_id.encode()})
        terms.add(source, notification_id, notification)
        return terms

    def add(self, source: str, notification_id: str, notification: dict | None) -> None:
        """Another notification of the case (its own, or one linked to it)."""
        self.notifications.add((source, notification_id))
        child = (notification or {}).get("child") or {}
        if child.get("nhs_number"):
            self.literals.add(normal_nhs_number(child["nhs_number"]).encode())
        if child.get("upn"):
            self.literals.add(normal_upn(child["upn"]).encode())
        born = child.get("date_of_birth") or child.get("expected_date_of_birth")
        if child.get("given_name") and child.get("family_name") and born:
            self.name_dobs.add((normal_name(f"{child['given_name']} {child['family_name']}"), str(born)))

    def named_by(self, body: bytes) -> bool:
        """Whether a stored body names this case (module doc)."""
        body = bytes(body or b"")
        if any(literal in body for literal in self.literals):
            return True
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return False
        if not isinstance(document, dict):
            return False
        if document.get("case_id") == self.case_id:
            return True
        referrer = document.get("referrer") if isinstance(document.get("referrer"), dict) else {}
        if (referrer.get("source"), document.get("notification_id")) in self.notifications:
            return True
        child = document.get("child") if isinstance(document.get("child"), dict) else {}
        if self.name_dobs and isinstance(child.get("given_name"), str) and isinstance(child.get("family_name"), str):
            born = child.get("date_of_birth") or child.get("expected_date_of_birth")
            name = normal_name(f"{child['given_name']} {child['family_name']}")
            return (name, str(born)) in self.name_dobs
        return False


def linked_table():
    """Issue 14's `linked_notifications` (notifications kept with the open case of the same child), once it exists."""
    from earlyhelp.persistence.tables import metadata

    return metadata.tables.get("linked_notifications")


def match_terms(conn, case_id: str) -> MatchTerms:
    from earlyhelp.persistence.tables import case_details, cases

    row = conn.execute(select(cases.c.source, cases.c.notification_id).where(cases.c.case_id == case_id)).first()
    if row is None:
        raise UnknownCase(case_id)
    details = conn.execute(select(case_details.c.notification).where(case_details.c.case_id == case_id)).scalar()
    terms = MatchTerms.of(case_id, row.source, row.notification_id, details)
    linked = linked_table()
    if linked is not None:
        for source, notification_id, notification in conn.execute(
                select(linked.c.source, linked.c.notification_id, linked.c.notification)
                .where(linked.c.case_id == case_id)):
            terms.add(source, notification_id, notification)
    return terms


def erase_case(conn, case_id: str, reason: str, operator: str, at: datetime,
               broker_copies_removed: int | None = None) -> dict:
    """Remove the case's personal data from the database (in the caller's transaction); return the counts.

    Raises UnknownCase or CaseStillOpen before changing anything. Erasing an erased case again sweeps
    the outbox again and adds no second `case.erased`.
    """
    from earlyhelp.consumers.recording import event_id_for
    from earlyhelp.persistence.tables import (
        case_details, case_history, case_identifiers, cases, disclosures, outbox,
    )
    from earlyhelp.schemas import DEAD_LETTER_QUEUE

    query = select(cases.c.state, cases.c.version).where(cases.c.case_id == case_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    case = conn.execute(query).first()
    if case is None:
        raise UnknownCase(case_id)
    if case.state != "closed":
        raise CaseStillOpen(case.state)
    terms = match_terms(conn, case_id)
    if conn.dialect.name == "sqlite":  # deleted rows' bytes overwritten in the file, not left in free pages
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    counts: dict[str, int] = {}
    disclosed = conn.execute(select(disclosures.c.event_id).where(disclosures.c.case_id == case_id)).scalars().all()
    counts["details"] = conn.execute(delete(case_details).where(case_details.c.case_id == case_id)).rowcount
    linked = linked_table()
    if linked is not None:  # the report counts links from the history's case.notification_linked rows, kept
        counts["linked_notifications"] = conn.execute(delete(linked).where(linked.c.case_id == case_id)).rowcount
    counts["identifier_hashes"] = conn.execute(
        delete(case_identifiers).where(case_identifiers.c.case_id == case_id)).rowcount
    counts["disclosure_rows"] = conn.execute(delete(disclosures).where(disclosures.c.case_id == case_id)).rowcount
    counts["clock_extension_reasons"] = erase_extension_reasons(conn, case_id)
    # Events of the case carrying personal data: their ids follow from the case, its versions and the event
    # type (consumers/recording.py), so events staged before the disclosure log existed are found too.
    personal_ids = {event_id_for(case_id, sequence, event_type)
                     for sequence in range(1, case.version + 1) for event_type in BASES} | set(disclosed)
    doomed: set[int] = set()
    for chunk in _chunks(sorted(personal_ids), 500):
        doomed.update(conn.execute(select(outbox.c.id).where(outbox.c.event_id.in_(chunk))).scalars())
    dead_letters = conn.execute(select(outbox.c.id, outbox.c.body).where(
        and_(outbox.c.exchange == "", outbox.c.routing_key == DEAD_LETTER_QUEUE))).all()
    copies = {row_id for row_id, body in dead_letters if terms.named_by(body)}
    counts["outbox_events"] = len(doomed - copies)
    counts["outbox_dead_letter_copies"] = len(copies)
    if doomed | copies:
        conn.execute(delete(outbox).where(outbox.c.id.in_(sorted(doomed | copies))))
    if broker_copies_removed is not None:
        counts["dead_letter_queue_copies"] = broker_copies_removed
    already = conn.execute(select(func.count()).select_from(case_history).where(
        and_(case_history.c.case_id == case_id, case_history.c.event_type == ERASED_EVENT))).scalar_one()
    if not already:
        sequence = case.version + 1
        moved = conn.execute(update(cases).where(and_(cases.c.case_id == case_id, cases.c.version == case.version))
                             .values(version=sequence)).rowcount
        if moved != 1:
            raise RuntimeError("the case changed while it was being erased; run erase again")
        conn.execute(case_history.insert().values(
            case_id=case_id, sequence=sequence, event_type=ERASED_EVENT,
            event_id=event_id_for(case_id, sequence, ERASED_EVENT), from_state=case.state, to_state=case.state,
            occurred_at=at, recorded_at=at, actor_id=operator[:200], actor_role="operator",
            caused_by="earlyhelp erase", sender_user_id=None, data={"reason": reason, "removed": counts}))
    counts["already_erased"] = int(bool(already))
    return counts


def erase_extension_reasons(conn, case_id: str) -> int:
    """extend_clock's reason is a manager's free text kept in the history (sla.extended.<stage> rows), where it
    may name the child: erasure replaces it, keeping the stage and the extra time the report counts."""
    from earlyhelp.persistence.tables import case_history

    rows = conn.execute(select(case_history.c.id, case_history.c.data).where(
        and_(case_history.c.case_id == case_id, case_history.c.event_type.like("sla.extended.%")))).all()
    changed = [{"b_id": row.id, "b_data": {**row.data, "reason": ERASED_TEXT}} for row in rows
               if (row.data or {}).get("reason") not in (None, ERASED_TEXT)]
    if changed:
        conn.execute(update(case_history).where(case_history.c.id == bindparam("b_id"))
                     .values(data=bindparam("b_data")), changed)
    return len(changed)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def dead_letter_queue_class():
    """The dead-letter queue session that removes copies (earlyhelp.operations, beside replay and purge)."""
    from earlyhelp.operations.dead_letters import DeadLetterQueue

    return DeadLetterQueue


def sweep_dead_letter_queue(queue, terms: MatchTerms) -> int:
    """Remove the copies in earlyhelp.dead-letter that name the case; every other copy goes back, in order."""
    removed = 0
    for copy in queue.read_all():
        if terms.named_by(copy.body):
            queue.remove(copy)
            removed += 1
    return removed
