"""What a failed transaction says about its cause, for whoever holds the work and decides what to do.

- the database is away or restarting (`is_database_unavailable`): not the work's fault; hold it and
  retry with backoff (the batch processor, the outbox relay, the start-up migration);
- a lost race with another worker (`is_lost_race`): a case's version moved, or a processed id, case,
  history row or outbox event was inserted first; retry at once, and the second pass sees the other
  worker's work.

Anything else is a fault in the work itself.
"""
from __future__ import annotations

from sqlalchemy import exc as sa_exc

from .case_store import ConcurrencyConflict


def is_database_unavailable(error: BaseException) -> bool:
    """Connection-level failures: the database is away or restarting, not this message's fault."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        text = str(error.orig if getattr(error, "orig", None) is not None else error).lower()
        # SQLite "database is locked" is contention, retried like a race, not an outage.
        return "locked" not in text
    return isinstance(error, sa_exc.TimeoutError)


def is_lost_race(error: BaseException) -> bool:
    if isinstance(error, ConcurrencyConflict):
        return True
    if isinstance(error, sa_exc.IntegrityError):
        text = str(error.orig).lower()
        return any(name in text for name in ("processed_messages", "pk_cases", "cases_pkey", "cases.case_id",
                                             "uq_case_history_case_sequence", "notification_id",
                                             "uq_outbox_event_id", "outbox.event_id", "message_key"))
    if isinstance(error, sa_exc.OperationalError):
        text = str(error.orig).lower()
        return "locked" in text or "deadlock" in text or "could not serialize" in text
    return False
