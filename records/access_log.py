"""The access log: who saw personal data, when, what and why. Append-only.

Every view that shows personal data (`case --show-personal`, `watch --show-personal`, `dead-letters
show --body`, `subject-access`) needs `--reason` and writes its rows here *before* it shows anything:
a view that cannot be logged is not shown. A row names the case (one row per case shown) and what was
shown, never the data itself, so erasing a case never needs to edit the log. No command updates or
deletes a row; a trigger refuses UPDATE and DELETE on PostgreSQL and SQLite (migration 0005).
"""
from __future__ import annotations

import getpass
import os
from datetime import datetime

from sqlalchemy import insert, select

OPERATOR_VARIABLE = "EARLYHELP_OPERATOR"


class NoReason(ValueError):
    """A view of personal data asked for without --reason."""


def operator_name() -> str:
    """EARLYHELP_OPERATOR, else the operating-system user."""
    named = (os.environ.get(OPERATOR_VARIABLE) or "").strip()
    if named:
        return named[:200]
    try:
        return getpass.getuser()[:200]
    except Exception:  # noqa: BLE001 - no user name in this environment
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def checked_reason(reason: str | None, view: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise NoReason(f"{view} shows personal data: give --reason (why you need to see it; it is logged)")
    return text


def record_view(conn, *, command: str, shown: str, reason: str, case_ids, at: datetime,
                operator: str | None = None) -> None:
    """Append one row per case shown (one row with no case when the view found none)."""
    from earlyhelp.persistence.tables import access_log

    who = operator or operator_name()
    ids = list(dict.fromkeys(case_ids)) or [None]
    conn.execute(insert(access_log), [{"at": at, "operator": who, "command": command, "case_id": case_id,
                                       "shown": shown, "reason": reason} for case_id in ids])


def read_log(conn, case_id: str | None = None, since: datetime | None = None) -> list[dict]:
    from earlyhelp.persistence.tables import access_log

    query = select(access_log).order_by(access_log.c.at, access_log.c.id)
    if case_id is not None:
        query = query.where(access_log.c.case_id == case_id)
    if since is not None:
        query = query.where(access_log.c.at >= since)
    return [dict(r._mapping) for r in conn.execute(query)]


def cases_named_in(body: bytes) -> list[str]:
    """The case a stored message body is about, for the log: its case_id, or the case its notification opened."""
    import json

    try:
        document = json.loads(bytes(body))
    except (ValueError, RecursionError):
        return []
    if not isinstance(document, dict):
        return []
    if isinstance(document.get("case_id"), str):
        return [document["case_id"][:64]]
    referrer = document.get("referrer") if isinstance(document.get("referrer"), dict) else {}
    if isinstance(document.get("notification_id"), str) and isinstance(referrer.get("source"), str):
        from earlyhelp.consumers.recording import case_id_for

        return [case_id_for(referrer["source"], document["notification_id"])]
    return []
