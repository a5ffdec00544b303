"""What a sender wrote is printed with its control characters visible, and CSV cells are never formulas."""
from __future__ import annotations

import csv
import io

import pytest

from earlyhelp.printing import escape
from earlyhelp.reports.render_csv import cell


@pytest.mark.parametrize("text, shown", [
    ("triage-07", "triage-07"),
    ("x\n  12  2026-11-21 10:00 UTC  case.closed", "x\\n  12  2026-11-21 10:00 UTC  case.closed"),
    ("team\x1b[2J\x1b]0;pwned\x07", "team\\x1b[2J\\x1b]0;pwned\\x07"),
    ("a\rb\tc\x00d\x7fe\x85f\x9bg", "a\\rb\\tc\\x00d\\x7fe\\x85f\\x9bg"),
    ("line\u2028sep \u202egnp.exe", "line\\u2028sep \\u202egnp.exe"),
    ("Zoë Ångström, 東京", "Zoë Ångström, 東京"),
    (None, ""),
    (42, "42"),
])
def test_control_characters_are_shown_as_escapes(text, shown):
    assert escape(text) == shown
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in escape(text))


@pytest.mark.parametrize("value, written", [
    ("=HYPERLINK(\"http://x\",\"Dover\")", "'=HYPERLINK(\"http://x\",\"Dover\")"),
    ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("  =1+1", "'  =1+1"), ("\t=1+1", "'\t=1+1"), ("\r=1+1", "'\r=1+1"),
    ("-12", "-12"), ("+3.5", "+3.5"), ("-0.25", "-0.25"), ("1e3", "1e3"),
    ("Tonbridge and Malling", "Tonbridge and Malling"), ("", ""), (None, ""), (-7, -7), (12.5, 12.5),
])
def test_csv_cells_that_a_spreadsheet_would_run_get_a_leading_quote(value, written):
    assert cell(value) == written


def _report_with_district(name: str) -> dict:
    from earlyhelp.reports.figures import HistoryRow, build_report
    from tests.unit.test_report_figures import AS_OF, POLICY, SEPTEMBER, at, case

    rows = [case(i, received=at(1 + i), district=name) for i in range(3)]
    return build_report(period=SEPTEMBER, cases=rows, stage_cases=rows,
                        history={r.case_id: [HistoryRow(r.case_id, 1, "case.received", r.received_at)] for r in rows},
                        previous_cases=None, open_cases=rows, policy=POLICY, districts=[name], as_of=AS_OF)


def test_a_district_named_as_a_formula_reaches_the_csv_as_text():
    from earlyhelp.reports import render

    formula = '=HYPERLINK("http://evil.example","Dover")'
    rows = list(csv.reader(io.StringIO(render(_report_with_district(formula), "csv"))))
    assert ["district", "'" + formula, "count", "3"] in rows
    assert not any(c.lstrip(" \t\r").startswith(("=", "+", "@")) for r in rows for c in r)
    # Negative figures stay numbers a spreadsheet can add up.
    assert all(c.lstrip("-").replace(".", "", 1).isdigit() for r in rows if r[0] == "notifications" for c in r[3:] if c)


def test_the_text_report_escapes_a_district_holding_an_escape_sequence():
    from earlyhelp.reports import render

    text = render(_report_with_district("Dover\x1b[31m\nFAKE LINE"), "text")
    assert "\x1b" not in text and "Dover\\x1b[31m\\nFAKE LINE" in text
