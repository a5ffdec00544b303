"""The report's arithmetic over known rows, each expected number worked out by hand or independently."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone

import pytest

from earlyhelp.reports import render
from earlyhelp.reports.figures import (
    CaseRow, HistoryRow, LateChange, LinkRow, Period, build_report, by_source, percentile_90, recorded_late, stage_measures,
    step_downs_per_week,
)
from earlyhelp.workflows.sla_policy import load_policy

UTC = timezone.utc
POLICY = load_policy()
SEPTEMBER = Period(date(2026, 9, 1), date(2026, 9, 30))
AS_OF = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def at(day: int, hour: int = 9, month: int = 9) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def case(n, source="school", kind="request_for_support", state="checked", received=None, district=None,
         priority=False, status=None, placed=False):
    return CaseRow(f"c{n}", kind, source, priority, state, received or at(1), district, None, status, placed)


def test_sources_fall_in_the_service_groups_with_social_care_split():
    rows = ([case(i, "school") for i in range(6)] + [case(10 + i, "health") for i in range(3)]
            + [case(20, "social_care", "step_down"), case(21, "social_care", "step_down"), case(22, "social_care")]
            + [case(30, "family"), case(31, "police"), case(32, "housing"), case(33, "not_recorded"),
               case(34, "other")])
    groups = {g["group"]: g for g in by_source(rows)}
    assert [g["count"] for g in by_source(rows)] == [3, 6, 3, 1, 2, 2]
    assert groups["social_care"]["percent"] == round(100 * 3 / 17, 1)
    parts = {p["group"]: p["count"] for p in groups["social_care"]["parts"]}
    assert parts == {"social_care_step_down": 2, "social_care_other": 1}
    assert {p["group"]: p["count"] for p in groups["not_recorded"]["parts"]} == {"not_recorded": 1, "other": 1}
    assert sum(g["count"] for g in groups.values()) == len(rows)


def test_step_downs_per_week_lists_every_week_from_monday():
    rows = [case(1, "social_care", "step_down", received=at(1)), case(2, "social_care", "step_down", received=at(6)),
            case(3, "social_care", "step_down", received=at(7)), case(4, received=at(8))]
    weeks = step_downs_per_week(rows, SEPTEMBER)
    # 1 Sept 2026 is a Tuesday: the first week starts on Monday 31 August; 6 Sept is its Sunday.
    assert weeks["weeks"][:3] == [{"week_starting": "2026-08-31", "count": 2},
                                  {"week_starting": "2026-09-07", "count": 1},
                                  {"week_starting": "2026-09-14", "count": 0}]
    assert len(weeks["weeks"]) == 5 and weeks["total"] == 3 and weeks["average_per_week"] == 0.6


def test_stage_times_and_compliance_from_history_with_a_pause():
    # Received Tue 1 Sept 09:00; information requested Wed 2 09:00, provided Fri 4 09:00 (2 working days
    # paused); triaged Tue 8 09:00: 5 working days elapsed, 3 without the pause. Triage allowance 14
    # calendar days + the 2-day pause: due 17 Sept 09:00, so on time.
    history = [HistoryRow("c1", 1, "case.received", at(1)), HistoryRow("c1", 2, "case.information_requested", at(2)),
               HistoryRow("c1", 3, "case.information_provided", at(4)), HistoryRow("c1", 4, "case.triaged", at(8)),
               # Allocation: triaged Tue 8 09:00, 4 working days: due at the end of Mon 14 (London), late on Tue 15.
               HistoryRow("c1", 5, "case.allocated", at(15))]
    row = case(1, received=at(1), district="Maidstone", state="allocated")
    triage, allocation, assessment = stage_measures(row, history, POLICY, POLICY.make_calendar())
    assert triage.due_at == at(17) and triage.working_days == 3.0 and triage.status(AS_OF) == "on_time"
    assert allocation.due_at == datetime(2026, 9, 14, 23, 0, tzinfo=UTC)  # midnight BST ends Monday 14
    assert allocation.working_days == 5.0 and allocation.status(AS_OF) == "late"
    assert assessment.stopped_at is None and assessment.status(AS_OF) == "open_overdue"  # 25 wd from 15 Sept


def test_open_overdue_counts_as_late_and_duplicates_are_left_out():
    cases = [case(1, received=at(1)), case(2, received=at(2), priority=True), case(3, received=at(3), state="closed")]
    history = {"c1": [HistoryRow("c1", 1, "case.received", at(1))],  # never triaged: overdue
               "c2": [HistoryRow("c2", 1, "case.received", at(2)), HistoryRow("c2", 2, "case.triaged", at(5))],
               "c3": [HistoryRow("c3", 1, "case.received", at(3)),
                      HistoryRow("c3", 2, "case.closed", at(20), data={"reason": "duplicate"})]}
    report = build_report(period=SEPTEMBER, cases=cases, stage_cases=cases, history=history, previous_cases=None,
                          open_cases=[cases[0]], policy=POLICY, districts=["Maidstone"], as_of=AS_OF)
    triage = report["timeliness"]["stages"][0]
    # c2 is priority (2 days) and took 3: late; c1 is open past 14 days: late; c3 is a duplicate: left out.
    assert (triage["on_time"], triage["late"], triage["open_overdue"], triage["percent_on_time"]) == (0, 1, 1, 0.0)
    assert report["notifications"] == {"total": 3, "previous_year": None, "change": None, "change_percent": None}
    assert report["unallocated"]["total"] == 1
    assert report["unallocated"]["bands"][-1] == {"age": "over 28 days", "count": 1}


def test_missing_child_splits_and_year_on_year_change():
    rows = [case(1, "police", "missing_child", status="open"), case(2, "police", "missing_child", status="closed"),
            case(3, "police", "missing_child", status="never_known", placed=True),
            case(4, "police", "missing_child", placed=True), case(5, district="Dover")]
    last_year = [case(9, district="Dover"), case(8, district="Dover")]
    report = build_report(period=SEPTEMBER, cases=rows, stage_cases=[], history={}, previous_cases=last_year,
                          open_cases=[], policy=POLICY, districts=["Dover"], as_of=AS_OF)
    missing = report["by_kind"]["missing_child"]
    assert (missing["total"], missing["not_open_to_social_care"], missing["placed_by_other_authorities"],
            missing["local"], missing["status_not_recorded"]) == (4, 2, 2, 2, 1)
    assert report["notifications"]["change"] == 3 and report["notifications"]["change_percent"] == 150.0
    dover = next(d for d in report["by_district"] if d["district"] == "Dover")
    assert (dover["count"], dover["previous_year"], dover["change"]) == (1, 2, -1)


def test_percentile_is_nearest_rank():
    assert percentile_90([5, 1, 4, 2, 3, 6, 7, 8, 9, 10]) == 9
    assert percentile_90([1.0]) == 1.0 and percentile_90([]) is None


@pytest.mark.parametrize("fmt", ["text", "json", "csv", "html"])
def test_every_format_renders_the_same_total(fmt):
    rows = [case(i, received=at(1 + i)) for i in range(7)]
    report = build_report(period=SEPTEMBER, cases=rows, stage_cases=rows,
                          history={r.case_id: [HistoryRow(r.case_id, 1, "case.received", r.received_at)] for r in rows},
                          previous_cases=None, open_cases=rows, policy=POLICY, districts=["Dover"], as_of=AS_OF)
    out = render(report, fmt)
    if fmt == "json":
        assert json.loads(out)["notifications"]["total"] == 7
    elif fmt == "csv":
        found = [r for r in csv.DictReader(io.StringIO(out)) if r["section"] == "notifications" and r["measure"] == "total"]
        assert found[0]["value"] == "7"
    elif fmt == "text":
        assert "Notifications processed: 7" in out
    else:
        assert out.startswith("<!DOCTYPE html>") and "<script" not in out and "http://" not in out.replace(
            'xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in out
        assert out.count('class="bar"') >= 5


def test_changes_recorded_more_than_24_hours_after_they_happened_are_counted_by_type():
    rows = [LateChange("c1", "case.allocated", at(3), at(5), "Dover"),            # 48 h late
            LateChange("c2", "case.allocated", at(3), at(4, 9)),                  # exactly 24 h: on time
            LateChange("c3", "case.closed", at(10), at(12, 10), "Maidstone"),     # 49 h late
            LateChange("c4", "case.closed", at(31, month=8), at(5))]              # happened before the period
    assert recorded_late(rows, SEPTEMBER) == {"total": 2, "by_event_type": {"case.allocated": 1, "case.closed": 1}}
    report = build_report(period=SEPTEMBER, cases=[], stage_cases=[], history={}, previous_cases=None, open_cases=[],
                          policy=POLICY, districts=["Dover", "Maidstone"], as_of=AS_OF, late_changes=rows)
    assert report["recorded_late"]["total"] == 2
    assert "Changes recorded more than 24 hours after they happened: 2" in render(report, "text")
    assert ["recorded_late", "all", "count", "2"] in list(csv.reader(io.StringIO(render(report, "csv"))))
    assert "changes recorded late" in render(report, "html")
    dover = build_report(period=SEPTEMBER, cases=[], stage_cases=[], history={}, previous_cases=None, open_cases=[],
                         policy=POLICY, districts=["Dover"], as_of=AS_OF, district="Dover", late_changes=rows)
    assert dover["recorded_late"] == {"total": 1, "by_event_type": {"case.allocated": 1}}


def test_linked_notifications_and_re_referrals_within_twelve_months_are_counted_in_every_format():
    links = [LinkRow("c1", at(3), "health", "request_for_support", ("nhs_number",), "Dover"),
             LinkRow("c2", at(4), "police", "missing_child", ("nhs_number", "name_dob"), None),
             LinkRow("c1", at(31, month=8), "health", "request_for_support", ("upn",), "Dover")]  # before the period
    rows = [case(i, received=at(1 + i), district="Dover" if i < 2 else None) for i in range(4)]
    report = build_report(period=SEPTEMBER, cases=rows, stage_cases=[], history={}, previous_cases=None, open_cases=[],
                          policy=POLICY, districts=["Dover"], as_of=AS_OF, links=links, re_referred={"c0", "c3", "c9"})
    assert report["known_children"] == {
        "linked_notifications": {"total": 2, "by_source": {"health": 1, "police": 1},
                                 "by_matched_on": {"name_dob": 1, "nhs_number": 2}},
        "re_referrals_within_12_months": {"count": 2, "of_notifications": 4, "percent": 50.0}}
    assert report["notifications"]["total"] == 4  # a linked notification opened no case: not among these
    assert "Notifications linked to a case already open: 2" in render(report, "text")
    assert "Re-referrals within 12 months: 2 of 4 notifications (50.0%)" in render(report, "text")
    table = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert ["known_children", "linked_notifications", "count", "2"] in table
    assert ["known_children", "linked_on/nhs_number", "count", "2"] in table
    assert ["known_children", "re_referrals_within_12_months", "percent", "50.0"] in table
    html = render(report, "html")
    assert "notifications linked to a case already open" in html and "re-referrals within 12 months" in html
    dover = build_report(period=SEPTEMBER, cases=rows, stage_cases=[], history={}, previous_cases=None, open_cases=[],
                         policy=POLICY, districts=["Dover"], as_of=AS_OF, district="Dover", links=links,
                         re_referred={"c0", "c3"})
    assert dover["known_children"]["linked_notifications"]["total"] == 1
    assert dover["known_children"]["re_referrals_within_12_months"] == {"count": 1, "of_notifications": 2,
                                                                       "percent": 50.0}


def test_sources_are_shares_of_requests_and_step_downs_with_missing_children_apart():
    from earlyhelp.reports.figures import by_source

    rows = [CaseRow(f"c{i}", kind, source, False, "checked", datetime(2026, 9, 1, tzinfo=timezone.utc))
            for i, (kind, source) in enumerate([("request_for_support", "school")] * 3
                                               + [("step_down", "social_care")] + [("missing_child", "police")] * 4)]
    groups = {g["group"]: (g["count"], g["percent"]) for g in by_source(rows)}
    assert groups["schools"] == (3, 75.0) and groups["housing_police_voluntary"] == (0, 0.0)


def test_the_census_code_comes_from_the_sender_then_the_kind_then_the_source():
    from earlyhelp.reports.cin_sources import BY_SOURCE, CIN_CODES, cin_code
    from earlyhelp.schemas.notification import SOURCES

    assert cin_code("health", "request_for_support", "3b") == ("3B", "sender")
    assert cin_code("health", "request_for_support", "ZZ") == ("3F", "source")  # not a census code
    assert cin_code("school", "step_down", None) == ("5A", "kind")
    assert set(BY_SOURCE) == set(SOURCES) and set(BY_SOURCE.values()) <= set(CIN_CODES)
