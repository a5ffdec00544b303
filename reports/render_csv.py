"""The report as CSV in long form (section, group, measure, value): one table a spreadsheet can pivot.

Group names come from outside (a district is whatever the authority configured, or what a triage
command named): a cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first, after any
spaces, tabs or carriage returns) is written with a leading `'`, which spreadsheets show as text.
Numbers, negative ones included, are left as numbers.
"""
from __future__ import annotations

import csv
import io
import re

_MEASURES = ("count", "percent", "previous_year", "change", "change_percent")
_SLA_MEASURES = ("measured", "on_time", "late", "open_overdue", "in_progress", "percent_on_time",
                 "median_working_days", "p90_working_days")


_FORMULA_START = re.compile(r"^[\s]*[=+\-@]")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def cell(value):
    """A value as it may go into a CSV cell: never a formula, numbers unchanged, None as empty."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if _FORMULA_START.match(value) and not _NUMBER.match(value):
        return "'" + value
    return value


def rows(report: dict):
    """(section, group, measure, value) for every figure in the report."""
    period = report["period"]
    yield "period", "", "from", period["from"]
    yield "period", "", "to", period["to"]
    yield "period", "", "district", period["district"] or "all"
    for key in ("total", "previous_year", "change", "change_percent"):
        yield "notifications", "all", key, report["notifications"][key]
    for group in report["by_source"]:
        for part in [group, *group.get("parts", [])]:
            for key in ("count", "percent"):
                yield "source", part["group"], key, part[key]
    for kind in report["by_kind"]["kinds"]:
        for key in ("count", "percent"):
            yield "kind", kind["kind"], key, kind[key]
    for key, value in report["by_kind"]["missing_child"].items():
        yield "missing_child", "", key, value
    for district in report["by_district"]:
        for key in _MEASURES:
            yield "district", district["district"], key, district[key]
    for week in report["step_downs"]["weeks"]:
        yield "step_downs_per_week", week["week_starting"], "count", week["count"]
    for stage in report["timeliness"]["stages"]:
        for key in _SLA_MEASURES:
            yield "timeliness", stage["stage"], key, stage[key]
    for row in report["timeliness"]["by_district"]:
        for key in _SLA_MEASURES:
            yield "timeliness_by_district", f"{row['district']}/{row['stage']}", key, row[key]
    for band in report["unallocated"]["bands"]:
        yield "unallocated_by_age", band["age"], "count", band["count"]
    late = report.get("recorded_late") or {"total": 0, "by_event_type": {}}
    yield "recorded_late", "all", "count", late["total"]
    for event_type, count in late["by_event_type"].items():
        yield "recorded_late", event_type, "count", count
    extended = report.get("extensions") or {"stages": [], "by_district": []}
    for row in extended["stages"]:
        for key in _EXTENSION_MEASURES:
            yield "extensions", row["stage"], key, row[key]
    for row in extended["by_district"]:
        for key in _EXTENSION_MEASURES:
            yield "extensions_by_district", f"{row['district']}/{row['stage']}", key, row[key]
    known = report.get("known_children")
    if known:
        linked, again = known["linked_notifications"], known["re_referrals_within_12_months"]
        yield "known_children", "linked_notifications", "count", linked["total"]
        for source, count in linked["by_source"].items():
            yield "known_children", f"linked_from/{source}", "count", count
        for identifier, count in linked["by_matched_on"].items():
            yield "known_children", f"linked_on/{identifier}", "count", count
        for key in ("count", "percent"):
            yield "known_children", "re_referrals_within_12_months", key, again[key]


_EXTENSION_MEASURES = ("extensions", "cases", "working_days", "calendar_days")


def render(report: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "group", "measure", "value"))
    for section, group, measure, value in rows(report):
        writer.writerow((cell(section), cell(group), cell(measure), cell(value)))
    return out.getvalue()
