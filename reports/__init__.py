"""Operators' and managers' views: queue status, dead letters, case timelines, the district report.

- figures.py: the report's arithmetic, pure functions over rows (testable without a database);
- loader.py: reads those rows from the database;
- render_text.py, render_json.py, render_csv.py, render_html.py (+ charts.py): one module per format;
- broker_status.py, dead_letters.py, case_views.py: what `earlyhelp queues`, `dead-letters list/show`,
  `cases` and `case` show (replay and purge change the broker: earlyhelp.operations).
"""
from __future__ import annotations

FORMATS = ("text", "json", "csv", "html")


def render(report: dict, fmt: str) -> str:
    """The report in `fmt`: text, json, csv or html."""
    from importlib import import_module

    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    return import_module(f"{__name__}.render_{fmt}").render(report)
