"""Subject access: every case of a child, found through the keyed hashes, as one JSON document or a
printable chronology (HTML, self-contained: no scripts, fonts or images from anywhere).

`{"request": {"by", "reason", "at"}, "cases": [{"case_id", "notification", "linked_notifications",
"history", "disclosures", "clocks"}]}` (docs/contract.md). `notification` is null for an erased case;
`linked_notifications` lists the notifications kept with the case instead of opening another (issue 14).
"""
from __future__ import annotations

import html
import json
from datetime import date, datetime

from sqlalchemy import select

from .disclosures import case_disclosures
from .pseudonyms import digest, normal_name_dob, normal_nhs_number, normal_upn


class BadIdentifier(ValueError):
    """An identifier given on the command line is malformed; the message never repeats it."""


def search_digest(key: bytes, *, nhs_number: str | None = None, upn: str | None = None,
                  name: str | None = None, dob: str | None = None) -> tuple[str, str]:
    """(kind, digest) of the one identifier asked for, checked as the schemas check it."""
    from earlyhelp.schemas.identifiers import nhs_number_problem, upn_problem

    if nhs_number is not None:
        value = normal_nhs_number(nhs_number)
        problem = nhs_number_problem(value)
        if problem:
            raise BadIdentifier(f"--nhs-number: {problem}")
        return "nhs_number", digest(key, "nhs_number", value)
    if upn is not None:
        value = normal_upn(upn)
        problem = upn_problem(value)
        if problem:
            raise BadIdentifier(f"--upn: {problem}")
        return "upn", digest(key, "upn", value)
    if not name or not name.strip() or len(name.split()) < 2:
        raise BadIdentifier('--name: give the given name and the family name, e.g. --name "Sam Taylor"')
    try:
        born = date.fromisoformat((dob or "").strip())
    except ValueError:
        raise BadIdentifier("--dob: not a date like 2015-05-02") from None
    return "name_dob", digest(key, "name_dob", normal_name_dob(name, born))


# Identifiers strong enough to follow from one case of the child to another (a name and date of birth are
# shared by other children, so they find cases but are not followed).
_FOLLOWED = ("nhs_number", "upn")


def find_cases(conn, kind: str, value: str) -> list[str]:
    """Every case of the child: those whose hash of `kind` is `value`, then those sharing an NHS number or
    UPN with a case found (a notification with only the UPN is still the child's), oldest received first."""
    from earlyhelp.persistence.tables import case_identifiers, cases

    found: set[str] = set()
    wanted = {(kind, value)}
    seen: set[tuple[str, str]] = set()
    while wanted - seen:
        pairs = wanted - seen
        seen |= pairs
        matches = set()
        for pair_kind, digest_value in pairs:
            matches.update(conn.execute(select(case_identifiers.c.case_id).where(
                case_identifiers.c.kind == pair_kind, case_identifiers.c.digest == digest_value)).scalars())
        new = matches - found
        found |= matches
        if new:
            wanted |= {(k, d) for k, d in conn.execute(
                select(case_identifiers.c.kind, case_identifiers.c.digest)
                .where(case_identifiers.c.case_id.in_(sorted(new)), case_identifiers.c.kind.in_(_FOLLOWED)))}
    if not found:
        return []
    rows = conn.execute(select(cases.c.case_id).where(cases.c.case_id.in_(sorted(found)))
                        .order_by(cases.c.received_at, cases.c.case_id))
    return list(rows.scalars())


def case_record(conn, case_id: str) -> dict:
    """One case's entry, its clocks still to come: what the service holds about the child, its history, disclosures."""
    from earlyhelp.persistence.tables import case_details, case_history
    notification = conn.execute(select(case_details.c.notification)
                                .where(case_details.c.case_id == case_id)).scalar()
    history = [dict(r._mapping) for r in conn.execute(
        select(case_history.c.sequence, case_history.c.event_type, case_history.c.from_state,
               case_history.c.to_state, case_history.c.occurred_at, case_history.c.recorded_at,
               case_history.c.actor_id, case_history.c.actor_role, case_history.c.data)
        .where(case_history.c.case_id == case_id).order_by(case_history.c.sequence))]
    return {"case_id": case_id, "notification": notification, "linked_notifications": linked_notifications(conn, case_id),
            "history": history, "disclosures": case_disclosures(conn, case_id), "clocks": []}


def linked_notifications(conn, case_id: str) -> list[dict]:
    """The notifications kept with the case instead of opening another (issue 14's table, where it exists)."""
    from .erasure import linked_table

    linked = linked_table()
    if linked is None:
        return []
    rows = conn.execute(select(*[c for c in linked.c if c.name not in ("id", "case_id")])
                        .where(linked.c.case_id == case_id).order_by(linked.c.received_at, linked.c.id))
    return [dict(r._mapping) for r in rows]


def subject_access_document(engine, case_ids: list[str], by: str, reason: str, now: datetime) -> dict:
    """The document for `case_ids`; each case's clocks as `earlyhelp clocks CASE_ID --format json` gives them
    (read on their own connection after the rest: SQLite takes its lock when a connection begins)."""
    from earlyhelp.reports.clock_views import case_clocks

    with engine.connect() as conn:
        records = [case_record(conn, case_id) for case_id in case_ids]
    for record in records:
        record["clocks"] = case_clocks(engine, record["case_id"], now) or []
    return {"request": {"by": by, "reason": reason, "at": now}, "cases": records}


def _iso(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def to_json(document: dict) -> str:
    return json.dumps(document, indent=2, default=_iso, ensure_ascii=False) + "\n"


# -- the printable chronology ---------------------------------------------------------------------------
_STYLE = """
body { font: 11pt/1.45 Georgia, "Times New Roman", serif; margin: 2em auto; max-width: 48em; color: #111; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; border-bottom: 1px solid #999;
margin-top: 2em; page-break-before: auto; } h3 { font-size: 1em; margin-bottom: 0.3em; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0 1em; font-size: 0.95em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.4em; text-align: left; vertical-align: top; }
th { background: #eee; } .meta { color: #444; } dl { margin: 0.3em 0; } dt { font-weight: bold; }
dd { margin: 0 0 0.4em 1.2em; white-space: pre-wrap; } @media print { h2 { page-break-before: always; } }
"""


def _e(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return html.escape(value.isoformat())
    if isinstance(value, (dict, list)):
        return html.escape(json.dumps(value, sort_keys=True, default=_iso, ensure_ascii=False))
    return html.escape(str(value))


def _details(value, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        items = []
        for key in value:
            items += _details(value[key], f"{prefix}{key}.")
        return items
    return [(prefix.rstrip("."), value)]


def to_html(document: dict) -> str:
    request = document["request"]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Subject access: Early Help records</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Early Help records held about the child</h1>",
             f'<p class="meta">Prepared {_e(request["at"])} by {_e(request["by"])}; reason: {_e(request["reason"])}. '
             f'{len(document["cases"])} case(s) found.</p>']
    for case in document["cases"]:
        parts.append(f"<h2>Case {_e(case['case_id'])}</h2>")
        parts.append("<h3>What the service was told</h3>")
        if case["notification"] is None:
            parts.append("<p>The details of this case have been erased.</p>")
        else:
            parts.append("<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>"
                                          for k, v in _details(case["notification"])) + "</dl>")
        parts.append("<h3>Chronology</h3><table><tr><th>When it happened</th><th>What</th><th>State</th>"
                     "<th>By</th><th>Recorded</th><th>Details</th></tr>")
        for h in case["history"]:
            by = f"{h['actor_id']} ({h['actor_role']})" if h.get("actor_id") else "the service"
            parts.append(f"<tr><td>{_e(h['occurred_at'])}</td><td>{_e(h['event_type'])}</td>"
                         f"<td>{_e(h['from_state'] or '')} &rarr; {_e(h['to_state'])}</td><td>{_e(by)}</td>"
                         f"<td>{_e(h['recorded_at'])}</td><td>{_e(h['data'] or '')}</td></tr>")
        parts.append("</table><h3>Who was told what</h3>")
        parts += _table(("When", "To", "Which details", "Lawful basis"),
                        [(d["disclosed_at"], d["routing_key"], ", ".join(d["field_paths"]), d["basis"])
                         for d in case["disclosures"]],
                        "Nothing about the child was sent to anyone outside the service.")
        parts.append("<h3>Time limits</h3>")
        parts += _table(("Stage", "Started", "Deadline", "State"),
                        [(c["stage"], c["started"], c["deadline"], c["state"]) for c in case["clocks"]], "None.")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _table(headers: tuple[str, ...], rows: list[tuple], when_empty: str) -> list[str]:
    """An HTML table of escaped cells, or one paragraph saying there is nothing to show."""
    if not rows:
        return [f"<p>{_e(when_empty)}</p>"]
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows]
    return ["<table>" + head, *body, "</table>"]
