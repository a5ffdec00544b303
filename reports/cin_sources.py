"""The Children in Need census's "source of referral" code for each notification (`report --format cin-sources`).

The census codes (docs/domain.md, "Reference lists") are finer than the contract's sources, so a code the
sender gave (`referrer.referral_source_code`, stored on the case) wins; otherwise it is mapped from the
source and kind: a step-down from social care is 5A (local authority social care) whoever sent it, and
a source with several census codes takes the one for "other" in its family (health → 3F, a family
self-referral → 1A, because the family, not the child, refers). Only ids, dates and codes: no personal data.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from earlyhelp.workflows.calendar import local_date

CIN_CODES = {
    "1A": "Family member/relative/carer", "1B": "Acquaintance", "1C": "Self", "1D": "Other individual",
    "2A": "Schools", "2B": "Education services", "3A": "Health services: GP", "3B": "Health visitor",
    "3C": "School nurse", "3D": "Other primary health services", "3E": "A&E", "3F": "Other health services",
    "4": "Housing", "5A": "LA services: social care", "5B": "LA services: other internal",
    "5C": "LA services: external (another LA)", "5D": "LA services: early help", "6": "Police",
    "7": "Other legal agency", "8": "Other", "9": "Anonymous", "10": "Unknown",
}
BY_SOURCE = {"school": "2A", "health": "3F", "social_care": "5A", "family": "1A", "housing": "4",
             "police": "6", "voluntary": "8", "other": "8", "not_recorded": "10"}
COLUMNS = ("case_id", "notification_id", "received_date", "source", "kind", "cin_referral_source",
           "cin_referral_source_label", "from")


@dataclass(frozen=True)
class NotificationSource:
    case_id: str
    notification_id: str
    received_at: datetime
    source: str
    kind: str
    referral_source_code: str | None = None


def cin_code(source: str, kind: str, given: str | None) -> tuple[str, str]:
    """(code, where it came from): the sender's code when it is a census code, else the mapping."""
    if given and given.upper() in CIN_CODES:
        return given.upper(), "sender"
    if kind == "step_down":
        return "5A", "kind"
    return BY_SOURCE.get(source, "10"), "source"


def rows(notifications: list[NotificationSource]) -> list[dict]:
    out = []
    for n in sorted(notifications, key=lambda n: (n.received_at, n.case_id)):
        code, origin = cin_code(n.source, n.kind, n.referral_source_code)
        out.append({"case_id": n.case_id, "notification_id": n.notification_id,
                    "received_date": local_date(n.received_at).isoformat(), "source": n.source, "kind": n.kind,
                    "cin_referral_source": code, "cin_referral_source_label": CIN_CODES[code], "from": origin})
    return out


def render_csv(notifications: list[NotificationSource]) -> str:
    from .render_csv import cell

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(notifications):
        writer.writerow({k: cell(v) for k, v in row.items()})
    return buffer.getvalue()
