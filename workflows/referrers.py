"""What the referrer hears of its notification (docs/contract.md, "Referrers told"): pure, no I/O.

`referrer.<source>.<event>` on earlyhelp.events, naming the notification and the case and no personal data.
One table maps the case's own changes to what its notifier (the case's source and notification id) is
told; the same table gives `earlyhelp status`'s story from the history, so the two never disagree.

Who hears what (kept simple): the case's own notifier hears `received`, `information_requested`, `decided`,
`allocated` and `closed`. A notification linked to the case (a child already known) hears `linked`, once,
and nothing after: a later outcome belongs to the case's own notifier, and telling every linked referrer
of it would tell one agency what became of another agency's referral.
"""
from __future__ import annotations

LINKED = "case.notification_linked"


def _received(data: dict, previous_state: str | None) -> dict:
    return {}


def _information_requested(data: dict, previous_state: str | None) -> dict:
    return {"missing": list(data.get("missing") or [])}


def _decided(data: dict, previous_state: str | None) -> dict:
    return {"service": data["service"], "district": data["district"]}


def _allocated(data: dict, previous_state: str | None) -> dict:
    return {"team": data["team"]}


def _closed(data: dict, previous_state: str | None) -> dict:
    return {"reason": data["reason"], "stepped_down": previous_state == "stepped_down"}


# The case's event -> (the referrer's event, what of its data the referrer is told).
TOLD_TO_NOTIFIER = {
    "case.received": ("received", _received),
    "case.information_requested": ("information_requested", _information_requested),
    "case.triaged": ("decided", _decided),
    "case.allocated": ("allocated", _allocated),
    "case.closed": ("closed", _closed),
}


def notice(event_type: str, data: dict, previous_state: str | None, case_source: str,
           case_notification_id: str) -> tuple[str, str, str, dict] | None:
    """What a referrer is told of one change of a case: (source, notification_id, event, data), or None.

    For case.notification_linked, the linked notification's own referrer (its source and id, from the
    change's data) hears `linked`; for the changes in TOLD_TO_NOTIFIER, the case's own notifier."""
    if event_type == LINKED:
        return data["source"], data["linked_notification_id"], "linked", {}
    told = TOLD_TO_NOTIFIER.get(event_type)
    if told is None:
        return None
    event, extract = told
    return case_source, case_notification_id, event, extract(data or {}, previous_state)
