"""`earlyhelp report` over a known stream run through the real engine: every number worked out independently."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from earlyhelp.cli.main import cli
from earlyhelp.consumers.recording import case_id_for
from tests.factories import command_body, encode, notification_body

pytestmark = pytest.mark.integration
UTC = timezone.utc

# (id, source, kind, received (September 2026 unless said), priority, extra body fields)
STREAM = [
    ("s1", "school", "request_for_support", "2026-09-01T09:00:00Z", False, {}),
    ("s2", "school", "request_for_support", "2026-09-02T09:00:00Z", False, {}),
    ("s3", "school", "request_for_support", "2026-09-03T09:00:00Z", True, {}),
    ("s4", "school", "request_for_support", "2026-09-08T09:00:00Z", False, {}),
    ("h1", "health", "request_for_support", "2026-09-04T09:00:00Z", False, {}),
    ("h2", "health", "request_for_support", "2026-09-15T09:00:00Z", False, {}),
    ("sd1", "social_care", "step_down", "2026-09-01T10:00:00Z", False, {}),
    ("sd2", "social_care", "step_down", "2026-09-03T10:00:00Z", False, {}),
    ("sd3", "social_care", "step_down", "2026-09-16T10:00:00Z", False, {}),
    ("sc1", "social_care", "request_for_support", "2026-09-09T10:00:00Z", False, {}),
    ("f1", "family", "request_for_support", "2026-09-10T09:00:00Z", False, {}),
    ("p1", "police", "missing_child", "2026-09-11T09:00:00Z", False, {"social_care_status": "closed"}),
    ("p2", "police", "missing_child", "2026-09-12T09:00:00Z", False,
     {"social_care_status": "never_known", "child": {"placing_authority": "Medway Council"}}),
    ("p3", "police", "missing_child", "2026-09-14T09:00:00Z", False, {"social_care_status": "open"}),
    ("v1", "voluntary", "request_for_support", "2026-09-17T09:00:00Z", False, {}),
    ("n1", "not_recorded", "request_for_support", "2026-09-18T09:00:00Z", False, {}),
    ("o1", "other", "request_for_support", "2026-09-21T09:00:00Z", False, {}),
    # Outside the period: October, and September last year (for the change on last year).
    ("oct", "school", "request_for_support", "2026-10-05T09:00:00Z", False, {}),
    ("ly1", "school", "request_for_support", "2025-09-10T09:00:00Z", False, {}),
    ("ly2", "health", "request_for_support", "2025-09-11T09:00:00Z", False, {}),
]
# Triage decisions: id -> (issued_at, district). Not listed: never triaged (open, and overdue by now).
TRIAGES = {
    "s1": ("2026-09-07T09:00:00Z", "Maidstone"),   # 6 days: on time (14)
    "s2": ("2026-09-24T09:00:00Z", "Maidstone"),   # 22 days: late
    "s3": ("2026-09-07T09:00:00Z", "Dover"),       # priority, 4 days: late (2)
    "s4": ("2026-09-09T09:00:00Z", "Dover"),       # 1 day: on time
    "h1": ("2026-09-08T09:00:00Z", "Dover"),       # 4 days: on time
    "sd1": ("2026-09-02T10:00:00Z", "Maidstone"),  # 1 day: on time
    "p1": ("2026-09-14T09:00:00Z", "Swale"),       # 3 days: on time
}
# Allocations: id -> issued_at. 4 working days from the triage: due at the end of the 4th working day after.
ALLOCATIONS = {
    "s1": "2026-09-10T09:00:00Z",   # triaged Mon 7, allocated Thu 10 (3 wd): on time (due end of Fri 11)
    "s4": "2026-09-16T09:00:00Z",   # triaged Wed 9, allocated Wed 16 (5 wd): late (due end of Tue 15)
    "h1": "2026-09-14T09:00:00Z",   # triaged Tue 8, allocated Mon 14 (4 wd): on time (due end of Mon 14)
    "sd1": "2026-09-08T10:00:00Z",  # triaged Wed 2, allocated Tue 8 (4 wd): on time (due end of Tue 8)
}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def weekdays_between(start: datetime, end: datetime) -> int:
    """Working days from start to end at the same time of day (no bank holiday in September 2026)."""
    day, count = start.date(), 0
    while day < end.date():
        count += day.weekday() < 5
        day += timedelta(days=1)
    return count


def nearest_rank_90(values):
    ordered = sorted(values)
    return ordered[-(-9 * len(ordered) // 10) - 1]


def expected_report():
    """The figures, computed straight from the stream above."""
    in_period = [s for s in STREAM if s[3].startswith("2026-09")]
    total = len(in_period)
    groups = {"social_care": ("social_care",), "schools": ("school",), "health": ("health",), "family": ("family",),
              "housing_police_voluntary": ("housing", "police", "voluntary"), "not_recorded": ("not_recorded", "other")}
    # Sources are shares of the requests for support and step-downs: missing children are counted apart.
    by_group = {g: sum(1 for s in in_period if s[1] in members and s[2] != "missing_child")
                for g, members in groups.items()}
    districts = Counter(TRIAGES[s[0]][1] if s[0] in TRIAGES else "unassigned" for s in in_period)
    triage = Counter()
    for ident, _source, _kind, received, priority, _extra in in_period:
        allowance = timedelta(days=2 if priority else 14)
        if ident not in TRIAGES:
            triage["open_overdue"] += 1
        else:
            triage["on_time" if when(TRIAGES[ident][0]) - when(received) < allowance else "late"] += 1
    triage_days = [weekdays_between(when(r), when(TRIAGES[i][0])) for i, _, _, r, _, _ in in_period if i in TRIAGES]
    allocation_days = [weekdays_between(when(TRIAGES[i][0]), when(a)) for i, a in ALLOCATIONS.items()]
    return {"total": total, "by_group": by_group, "districts": districts, "triage": triage,
            "triage_days": triage_days, "allocation_days": allocation_days}


SOURCES_OF = {ident: source for ident, source, *_ in STREAM}


def test_report_over_a_known_stream(settings, engine, tap, upstream, tmp_path):
    for ident, source, kind, received, priority, extra in STREAM:
        body = notification_body(notification_id=f"stream-{ident}", kind=kind, received_at=received, priority=priority,
                                 referrer={"source": source}, **extra)
        assert upstream.publish("earlyhelp.notifications", f"notification.{source}", encode(body)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.checked", count=len(STREAM))
    for ident, (issued, district) in TRIAGES.items():
        command = command_body("triage", case_id_for(SOURCES_OF[ident], f"stream-{ident}"), district=district, issued_at=issued)
        assert upstream.publish("earlyhelp.commands", "case.triage", encode(command)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.triaged", count=len(TRIAGES))
    for ident, issued in ALLOCATIONS.items():
        command = command_body("allocate", case_id_for(SOURCES_OF[ident], f"stream-{ident}"), issued_at=issued)
        assert upstream.publish("earlyhelp.commands", "case.allocate", encode(command)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.allocated", count=len(ALLOCATIONS))

    env = {"EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url}
    result = CliRunner().invoke(cli, ["report", "--from", "2026-09-01", "--to", "2026-09-30", "--format", "json"],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    want = expected_report()

    assert report["notifications"]["total"] == want["total"] == 17
    assert report["notifications"]["previous_year"] == 2 and report["notifications"]["change"] == 15
    assert {g["group"]: g["count"] for g in report["by_source"]} == want["by_group"]
    social = next(g for g in report["by_source"] if g["group"] == "social_care")
    assert {p["group"]: p["count"] for p in social["parts"]} == {"social_care_step_down": 3, "social_care_other": 1}
    assert social["percent"] == round(100 * 4 / 14, 1) and report["by_source_excludes"] == {"missing_child": 3}
    missing = report["by_kind"]["missing_child"]
    assert (missing["total"], missing["not_open_to_social_care"], missing["closed_to_social_care"],
            missing["never_known"], missing["placed_by_other_authorities"]) == (3, 2, 1, 1, 1)
    assert {d["district"]: d["count"] for d in report["by_district"] if d["count"]} == dict(want["districts"])
    # Step-downs: weeks start Monday 31 Aug (sd1, sd2), 7 Sept (none), 14 Sept (sd3), 21 and 28 Sept (none).
    assert [w["count"] for w in report["step_downs"]["weeks"]] == [2, 0, 1, 0, 0]

    triage, allocation, assessment = report["timeliness"]["stages"]
    assert {k: triage[k] for k in ("on_time", "late", "open_overdue")} == dict(want["triage"])
    assert triage["percent_on_time"] == round(100 * want["triage"]["on_time"] / sum(want["triage"].values()), 1)
    # Triaged and never allocated (s2, s3, p1): their 4 working days ran out in September.
    assert (allocation["on_time"], allocation["late"], allocation["open_overdue"]) == (3, 1, len(TRIAGES) - len(ALLOCATIONS))
    assert triage["median_working_days"] == sorted(want["triage_days"])[len(want["triage_days"]) // 2]
    assert triage["p90_working_days"] == nearest_rank_90(want["triage_days"])
    assert allocation["median_working_days"] == (sorted(want["allocation_days"])[1] + sorted(want["allocation_days"])[2]) / 2
    assert assessment["measured"] == 4 and assessment["open_overdue"] == 4  # 25 wd from mid-September has passed
    dover = [r for r in report["timeliness"]["by_district"] if r["district"] == "Dover" and r["stage"] == "triage"]
    assert (dover[0]["on_time"], dover[0]["late"]) == (2, 1)
    # Open and not allocated now: every case never allocated, October's and last year's included.
    assert report["unallocated"]["total"] == len(STREAM) - len(ALLOCATIONS)

    # One district only.
    result = CliRunner().invoke(cli, ["report", "--from", "2026-09-01", "--to", "2026-09-30", "--format", "json",
                                      "--district", "maidstone"], env=env, catch_exceptions=False)
    maidstone = json.loads(result.stdout)
    assert maidstone["notifications"]["total"] == 3 and maidstone["period"]["district"] == "Maidstone"

    # The other formats carry the same numbers.
    out = tmp_path / "report.csv"
    CliRunner().invoke(cli, ["report", "--from", "2026-09-01", "--to", "2026-09-30", "--format", "csv",
                             "--output", str(out)], env=env, catch_exceptions=False)
    rows = {(r["section"], r["group"], r["measure"]): r["value"] for r in csv.DictReader(io.StringIO(out.read_text()))}
    assert rows[("notifications", "all", "total")] == "17" and rows[("source", "schools", "count")] == "4"
    text = CliRunner().invoke(cli, ["report", "--from", "2026-09-01", "--to", "2026-09-30"], env=env).output
    assert "Notifications processed: 17" in text and "Sam" not in text
    assert "the 3 missing-child notifications are counted apart" in text

    # The census export: one row a notification, its code from the sender, its kind or its source.
    census = CliRunner().invoke(cli, ["report", "--from", "2026-09-01", "--to", "2026-09-30", "--format",
                                      "cin-sources"], env=env, catch_exceptions=False).output
    codes = {r["notification_id"]: (r["cin_referral_source"], r["from"]) for r in csv.DictReader(io.StringIO(census))}
    assert len(codes) == 17 and "Sam" not in census and "Taylor" not in census
    assert codes["stream-s1"] == ("2A", "source") and codes["stream-h1"] == ("3F", "source")
    assert codes["stream-sd1"] == ("5A", "kind") and codes["stream-p1"] == ("6", "source")
    assert codes["stream-f1"] == ("1A", "source") and codes["stream-n1"] == ("10", "source")
    assert codes["stream-v1"] == ("8", "source") and codes["stream-o1"] == ("8", "source")
