"""The report as ONE self-contained HTML file: inline CSS and inline SVG charts, no scripts, works offline.

Meant to be opened, printed or emailed to a headteachers' forum: headline figures first, each chart
beside the table with the exact numbers.
"""
from __future__ import annotations

from html import escape

from . import charts
from .formatting import change_text, number, pct

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --brand:#1b6f8a; --bg:#f5f7fa; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
header { background:var(--brand); color:#fff; padding:28px 40px 22px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:650; }
header p { margin:0; opacity:.9; }
main { max-width:1180px; margin:0 auto; padding:24px 32px 40px; }
.tiles { display:grid; grid-template-columns:repeat(5,1fr); gap:16px; margin-bottom:22px; }
.tile { background:#fff; border-radius:10px; padding:16px 18px; box-shadow:0 1px 3px rgba(0,0,0,.08); }
.tile .value { font-size:30px; font-weight:700; color:var(--brand); }
.tile .label { color:var(--muted); font-size:13px; }
.tile .note { font-size:12.5px; color:var(--muted); margin-top:2px; }
section { background:#fff; border-radius:10px; padding:18px 22px 20px; margin-bottom:20px;
          box-shadow:0 1px 3px rgba(0,0,0,.08); }
section h2 { font-size:18px; margin:0 0 4px; }
section .lead { color:var(--muted); margin:0 0 12px; font-size:13.5px; }
.pair { display:grid; grid-template-columns:1.25fr 1fr; gap:22px; align-items:start; }
table { border-collapse:collapse; width:100%; font-size:13.5px; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th:first-child, td:first-child { text-align:left; white-space:normal; }
th { color:var(--muted); font-weight:600; font-size:12.5px; }
tr.part td:first-child { padding-left:22px; color:var(--muted); }
.good { color:#2e8b57; font-weight:600; } .bad { color:#c0392b; font-weight:600; }
footer { color:var(--muted); font-size:12px; max-width:1180px; margin:0 auto; padding:0 32px 30px; }
@media print { body { background:#fff; } section, .tile { box-shadow:none; border:1px solid var(--line); } }
@media (max-width: 900px) { .pair, .tiles { grid-template-columns:1fr; } }
"""


def _table(headers: list[str], rows: list[tuple[list, str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f'<tr class="{cls}">' + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"
                   for cells, cls in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tile(value: str, label: str, note: str = "") -> str:
    return (f'<div class="tile"><div class="value">{escape(value)}</div><div class="label">{escape(label)}</div>'
            f'<div class="note">{escape(note)}</div></div>')


def _section(title: str, lead: str, *parts: str, pair: bool = True) -> str:
    inner = f'<div class="pair">{"".join(parts)}</div>' if pair and len(parts) > 1 else "".join(parts)
    return f"<section><h2>{escape(title)}</h2><p class=\"lead\">{escape(lead)}</p>{inner}</section>"


def render(report: dict) -> str:
    period, notes = report["period"], report["notifications"]
    where = period["district"] or "all districts"
    timeliness, steps, un = report["timeliness"], report["step_downs"], report["unallocated"]
    missing = report["by_kind"]["missing_child"]
    on_time = [s for s in timeliness["stages"] if s["measured"]]
    tiles = "".join([
        _tile(str(notes["total"]), "notifications processed", change_text(notes)),
        _tile(number(steps["average_per_week"]), "step-downs from social care a week", f"{steps['total']} in all"),
        _tile(pct(on_time[0]["percent_on_time"]) if on_time else "-",
              f"{on_time[0]['stage']} on time" if on_time else "on time",
              f"{on_time[0]['on_time']} of {on_time[0]['measured']} measured" if on_time else "nothing measured"),
        _tile(str(un["total"]), "open cases not yet allocated",
              f"oldest {un['oldest_days']} days" if un["oldest_days"] is not None else "none waiting"),
        _tile(str(report.get("recorded_late", {}).get("total", 0)), "changes recorded late",
              "recorded more than 24 hours after they happened"),
        *_known_children(report.get("known_children")),
    ])
    sections = [
        _sources(report["by_source"]), _districts(report["by_district"]), _step_downs(steps),
        _kinds(report["by_kind"]["kinds"], missing), _timeliness(timeliness), _unallocated(un),
        _extensions(report.get("extensions")),
    ]
    return (
        "<!DOCTYPE html><html lang=\"en-GB\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(report['title'])}, {escape(period['from'])} to {escape(period['to'])}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{escape(report['title'])}</h1><p>{escape(period['from'])} to {escape(period['to'])}, "
        f"{escape(where)}</p></header><main><div class=\"tiles\">{tiles}</div>{''.join(sections)}</main>"
        f"<footer>Figures as recorded at {escape(period['as_of'][:16].replace('T', ' '))} UTC. Notifications are "
        "counted by when the service received them; a case's district is the one set at triage. Timeliness "
        "covers stages that started in the period, measured from the recorded times against the SLA policy; "
        "time awaiting information does not count, and open cases already past due count as late. "
        "Generated by earlyhelp report.</footer></body></html>\n")


def _known_children(known: dict | None) -> list[str]:
    if not known:
        return []
    linked, again = known["linked_notifications"], known["re_referrals_within_12_months"]
    sources = ", ".join(f"{n} from {s}" for s, n in linked["by_source"].items()) or "none"
    return [_tile(str(linked["total"]), "notifications linked to a case already open", f"{sources}; no case opened"),
            _tile(str(again["count"]), "re-referrals within 12 months",
                  f"{pct(again['percent'])} of {again['of_notifications']} notifications")]


def _sources(groups: list[dict]) -> str:
    bars = [(g["label"].split(" (")[0], g["count"], f"{g['count']} ({pct(g['percent'])})") for g in groups]
    rows = []
    for g in groups:
        rows.append(([g["label"], g["count"], pct(g["percent"])], ""))
        rows += [([p["label"], p["count"], pct(p["percent"])], "part") for p in g.get("parts", [])]
    return _section("Where notifications came from", "Share of all notifications in the period, by referrer.",
                    charts.horizontal_bars(bars, "Notifications by source"),
                    _table(["source", "count", "share"], rows))


def _districts(districts: list[dict]) -> str:
    bars = [(d["district"], d["count"], f"{d['count']}") for d in districts]
    rows = [([d["district"], d["count"], pct(d["percent"]), "-" if d["previous_year"] is None else d["previous_year"],
              change_text(d, short=True)], "") for d in districts]
    return _section("Notifications by district", "District set at triage; cases not yet triaged are unassigned.",
                    charts.horizontal_bars(bars, "Notifications by district", color=charts.PALETTE["secondary"],
                                           label_width=190),
                    _table(["district", "count", "share", "last year", "change"], rows))


def _step_downs(steps: dict) -> str:
    points = [(w["week_starting"], w["count"]) for w in steps["weeks"]]
    return _section("Step-downs from social care, week by week",
                    f"{steps['total']} notifications of kind step_down, {number(steps['average_per_week'])} a week "
                    "on average (weeks start on Monday).",
                    charts.weekly_line(points, "Step-downs from social care per week", width=1100, height=240),
                    pair=False)


def _kinds(kinds: list[dict], missing: dict) -> str:
    rows = [([k["label"], k["count"], pct(k["percent"])], "") for k in kinds]
    split = charts.stacked_shares([
        ("Placement", [("local children", missing["local"], charts.PALETTE["primary"]),
                       ("placed by other authorities", missing["placed_by_other_authorities"],
                        charts.PALETTE["accent"])]),
        ("Social care", [("open", missing["open_to_social_care"], charts.PALETTE["secondary"]),
                         ("closed", missing["closed_to_social_care"], charts.PALETTE["late"]),
                         ("never known", missing["never_known"], charts.PALETTE["overdue"]),
                         ("not recorded", missing["status_not_recorded"], charts.PALETTE["pending"])]),
    ], "Missing-child notifications, split")
    lead = (f"{missing['total']} missing-child notifications: {missing['not_open_to_social_care']} "
            f"({pct(missing['not_open_percent'])}) were not open cases to social care.")
    return _section("Kinds of notification", lead, _table(["kind", "count", "share"], rows), split)


def _timeliness(timeliness: dict) -> str:
    def segments(row):
        return [("on time", row["on_time"], charts.PALETTE["good"]), ("late", row["late"], charts.PALETTE["late"]),
                ("open, overdue", row["open_overdue"], charts.PALETTE["overdue"])]

    chart = charts.stacked_shares([(s["stage"], segments(s)) for s in timeliness["stages"]],
                                  "Timeliness by stage", width=1100, label_width=110)
    rows = [([s["stage"], s["allowance"], s["on_time"], s["late"], s["open_overdue"], s["in_progress"],
              pct(s["percent_on_time"]), number(s["median_working_days"]), number(s["p90_working_days"])], "")
            for s in timeliness["stages"]]
    stage_table = _table(["stage", "allowance", "on time", "late", "open overdue", "in progress", "on time %",
                          "median (wd)", "90th pct (wd)"], rows)
    parts = [_section("Timeliness against each timescale",
                      "Stages that started in the period. Time in stage in working days (wd), without time "
                      "awaiting information.", chart, stage_table, pair=False)]
    by_district = timeliness["by_district"]
    if by_district:
        parts.append(_timeliness_by_district(by_district))
    return "".join(parts)


STAGE_COLOURS = {"triage": charts.PALETTE["primary"], "allocation": charts.PALETTE["good"],
                 "assessment": charts.PALETTE["accent"]}


def _timeliness_by_district(rows: list[dict]) -> str:
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    districts = list(dict.fromkeys(r["district"] for r in rows))
    cell = {(r["district"], r["stage"]): r for r in rows}

    def note(r):
        return f"{pct(r['percent_on_time'])} ({r['on_time']}/{r['measured']})" if r and r["measured"] else "-"

    groups = [(d, [(s, (cell.get((d, s)) or {}).get("percent_on_time"), note(cell.get((d, s))),
                    STAGE_COLOURS.get(s, charts.PALETTE["primary"])) for s in stages]) for d in districts]
    table = _table(["district", *[f"{s} on time" for s in stages],
                    *[f"{s} median (wd)" for s in stages]],
                   [([d, *[note(cell.get((d, s))) for s in stages],
                      *[number((cell.get((d, s)) or {}).get("median_working_days")) for s in stages]], "")
                    for d in districts])
    return _section("Timeliness by district", "Share of measured stages completed on time, with on-time/measured.",
                    charts.grouped_bars(groups, "On time by district and stage"), table, pair=False)


def _unallocated(un: dict) -> str:
    states = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in un["by_state"].items())
    return _section("Open cases not yet allocated, by age",
                    f"{un['total']} open cases not yet allocated ({states}); age in calendar days since received.",
                    charts.columns([(b["age"], b["count"]) for b in un["bands"]], "Unallocated cases by age"),
                    _table(["age", "cases"], [([b["age"], b["count"]], "") for b in un["bands"]]))


def _extensions(extended: dict | None) -> str:
    if not extended:
        return ""
    headers = ["extensions", "cases", "working days", "calendar days"]

    def cells(r):
        return [r["extensions"], r["cases"], r["working_days"], r["calendar_days"]]

    rows = [([r["stage"], *cells(r)], "") for r in extended["stages"]]
    rows += [([f"{r['district']}: {r['stage']}", *cells(r)], "part") for r in extended["by_district"]]
    return _section("Clock extensions", f"{extended['total']} extensions granted by managers in the period, on "
                    f"{extended['cases']} cases; an extended stage is judged by its extended deadline.",
                    _table(["stage", *headers], rows), pair=False)
