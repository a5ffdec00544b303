"""The report as plain text for a terminal or an email: the same figures, in aligned tables.

Every cell and name goes through earlyhelp.printing.escape: district names are configuration or what
a command named, and must not reach a terminal as control sequences.
"""
from __future__ import annotations

from earlyhelp.printing import escape, table

from .formatting import change_text, number, pct


def _table(headers: list[str], body: list[list]) -> list[str]:
    return table([headers, *body], rule=True)


def render(report: dict) -> str:
    period, notes = report["period"], report["notifications"]
    out = [escape(report["title"]), f"{period['from']} to {period['to']}"
           + (f", {escape(period['district'])}" if period["district"] else ", all districts"), ""]
    out.append(f"Notifications processed: {notes['total']} ({change_text(notes)})")
    apart = report.get("by_source_excludes", {}).get("missing_child", 0)
    out += ["", "By source (requests for support and step-downs"
            + (f"; the {apart} missing-child notifications are counted apart, below)" if apart else ")")]
    body = []
    for group in report["by_source"]:
        body.append([group["label"], group["count"], pct(group["percent"])])
        body += [[f"  of which {p['label']}", p["count"], pct(p["percent"])] for p in group.get("parts", [])]
    out += _table(["source", "count", "share"], body)
    out += ["", "By kind"]
    out += _table(["kind", "count", "share"],
                  [[k["label"], k["count"], pct(k["percent"])] for k in report["by_kind"]["kinds"]])
    m = report["by_kind"]["missing_child"]
    out.append(f"Missing children: {m['total']}: {m['local']} local ({pct(m['local_percent'])}), "
               f"{m['placed_by_other_authorities']} placed by other authorities ({pct(m['placed_percent'])}); "
               f"{m['not_open_to_social_care']} not open to social care ({pct(m['not_open_percent'])}: "
               f"{m['closed_to_social_care']} closed, {m['never_known']} never known)")
    out += ["", "By district"]
    out += _table(["district", "count", "share", "last year", "change"],
                  [[d["district"], d["count"], pct(d["percent"]), d["previous_year"], change_text(d, short=True)]
                   for d in report["by_district"]])
    steps = report["step_downs"]
    out += ["", f"Step-downs from social care: {steps['total']} ({number(steps['average_per_week'])} a week)"]
    out += _table(["week starting", "step-downs"], [[w["week_starting"], w["count"]] for w in steps["weeks"]])
    out += ["", "Timeliness (stages started in the period)"]
    out += _sla_table(report["timeliness"]["stages"], "stage")
    if report["timeliness"]["by_district"]:
        out += ["", "Timeliness by district"]
        out += _sla_table(report["timeliness"]["by_district"], "district")
    un = report["unallocated"]
    out += ["", f"Open unallocated cases at {un['as_of'][:16]}: {un['total']}"]
    out += _table(["age", "cases"], [[b["age"], b["count"]] for b in un["bands"]])
    late = report.get("recorded_late") or {"total": 0, "by_event_type": {}}
    out += ["", f"Changes recorded more than 24 hours after they happened: {late['total']}"]
    if late["by_event_type"]:
        out += _table(["change", "recorded late"], [[t, n] for t, n in late["by_event_type"].items()])
    extended = report.get("extensions")
    if extended:
        out += ["", f"Clock extensions granted by managers: {extended['total']} on {extended['cases']} cases"]
        headers = ["extensions", "cases", "working days", "calendar days"]
        out += _table(["stage", *headers], [[r["stage"], *_extension_cells(r)] for r in extended["stages"]])
        if extended["by_district"]:
            out += _table(["district", "stage", *headers],
                          [[r["district"], r["stage"], *_extension_cells(r)] for r in extended["by_district"]])
    out += _known_children(report.get("known_children"))
    return "\n".join(out) + "\n"


def _extension_cells(row: dict) -> list:
    return [row["extensions"], row["cases"], row["working_days"], row["calendar_days"]]


def _known_children(known: dict | None) -> list[str]:
    if not known:
        return []
    linked, again = known["linked_notifications"], known["re_referrals_within_12_months"]
    out = ["", f"Notifications linked to a case already open: {linked['total']} (not counted above: they opened no case)"]
    if linked["total"]:
        out += _table(["linked from", "notifications"], [[s, n] for s, n in linked["by_source"].items()])
        out += _table(["matched on", "notifications"], [[m, n] for m, n in linked["by_matched_on"].items()])
    out.append(f"Re-referrals within 12 months: {again['count']} of {again['of_notifications']} notifications "
               f"({pct(again['percent'])})")
    return out


def _sla_table(rows: list[dict], first: str) -> list[str]:
    headers = [first] + (["stage"] if first == "district" else ["allowance"]) + [
        "on time", "late", "open overdue", "in progress", "% on time", "median wd", "p90 wd"]
    body = [[r[first], r["stage"] if first == "district" else r["allowance"], r["on_time"], r["late"],
             r["open_overdue"], r["in_progress"], pct(r["percent_on_time"]), number(r["median_working_days"]),
             number(r["p90_working_days"])] for r in rows]
    return _table(headers, body)
