"""SLA policy file: the shipped default, and a clear PolicyError for each kind of bad file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from earlyhelp.workflows.sla_policy import Allowance, PolicyError, SlaPolicy, load_policy

GOOD = """
warning_share = 0.8
counting = "start_day"
extra_closures = [2026-12-29, "2026-12-30"]

[stages.triage]
start_on = "case.received"
stop_on = ["case.triaged"]
allowance = { amount = 14, unit = "calendar_days" }
priority_allowance = { amount = 2, unit = "calendar_days" }

[stages.allocation]
start_on = "case.triaged"
stop_on = ["case.allocated"]
allowance = { amount = 4, unit = "working_days" }

[stages.assessment]
start_on = "case.allocated"
stop_on = ["case.assessed"]
allowance = { amount = 30, unit = "working_days" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_policy_loads_with_kents_values() -> None:
    policy = load_policy()
    assert isinstance(policy, SlaPolicy)
    assert policy.warning_share == 0.75
    assert policy.counting == "next_working_day"
    assert policy.extra_closures == ()
    assert policy.allowance_for("triage", priority=False) == Allowance(amount=14, unit="calendar_days")
    assert policy.allowance_for("triage", priority=True) == Allowance(amount=2, unit="calendar_days")
    assert policy.allowance_for("allocation", priority=False) == Allowance(amount=4, unit="working_days")
    # No priority allowance: a priority case gets the ordinary one.
    assert policy.allowance_for("allocation", priority=True) == Allowance(amount=4, unit="working_days")
    assert policy.allowance_for("assessment", priority=False) == Allowance(amount=25, unit="working_days")


def test_default_policy_events() -> None:
    policy = load_policy()
    assert policy.stages_started_by("case.received") == ["triage"]
    assert policy.stages_started_by("case.triaged") == ["allocation"]
    assert policy.stages_started_by("case.allocated") == ["assessment"]
    assert policy.stages_started_by("case.checked") == []
    assert policy.stages_stopped_by("case.triaged") == ["triage"]
    assert policy.stages_stopped_by("case.allocated") == ["allocation"]
    assert policy.stages_stopped_by("case.assessed") == ["assessment"]
    assert policy.stages_stopped_by("case.closed") == ["triage", "allocation", "assessment"]
    assert policy.stages_stopped_by("case.information_requested") == []


def test_a_custom_file(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.warning_share == 0.8
    assert policy.counting == "start_day"
    assert policy.extra_closures == (date(2026, 12, 29), date(2026, 12, 30))
    assert policy.allowance_for("assessment", False).amount == 30
    # case.closed stops every stage even where the file leaves it out.
    assert policy.stages["triage"].stop_on == ("case.triaged", "case.closed")
    assert not policy.make_calendar().is_working_day(date(2026, 12, 29))


def test_unknown_stage_name_for_allowance() -> None:
    with pytest.raises(KeyError, match="review"):
        load_policy().allowance_for("review", False)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('unit = "working_days" }\n\n[stages.assessment]', 'unit = "weeks" }\n\n[stages.assessment]',
         r"stages\.allocation\.allowance\.unit: .*'weeks'"),
        ("amount = 4,", "amount = 0,", r"stages\.allocation\.allowance\.amount: .*greater than 0"),
        ("amount = 4,", "amount = -3,", r"stages\.allocation\.allowance\.amount"),
        ("amount = 4,", "amount = 4.5,", r"stages\.allocation\.allowance\.amount: .*integer"),
        ('start_on = "case.triaged"', 'start_on = "case.triaged_ok"',
         r"stages\.allocation\.start_on: unknown event type 'case\.triaged_ok'"),
        ('stop_on = ["case.assessed"]', 'stop_on = ["case.assesed"]',
         r"stages\.assessment\.stop_on: unknown event type 'case\.assesed'"),
        ('start_on = "case.received"', 'start_on = "case.information_requested"',
         r"unknown event type 'case\.information_requested'"),
        ('start_on = "case.received"', 'start_on = "case.closed"', r"case\.closed stops every clock"),
        ('stop_on = ["case.triaged"]', 'stop_on = ["case.received"]', r"cannot both start and stop"),
        ("warning_share = 0.8", "warning_share = 1.5", r"warning_share: .*less than 1"),
        ("warning_share = 0.8", "warning_share = 0", r"warning_share: .*greater than 0"),
        ('counting = "start_day"', 'counting = "census"', r"counting: .*'census'"),
        ("[stages.assessment]", "[stages.assesment]",
         r"stages: unknown stage 'assesment'; the stages are triage, allocation, assessment"),
        ('2026-12-29, "2026-12-30"', '"29/12/2026"', r"extra_closures\.0: .*'29/12/2026'"),
        ("warning_share = 0.8", "warning_share = 0.8\nwarnings = 2", r"warnings: Extra inputs are not permitted"),
        ("priority_allowance = { amount = 2,", "priority_allowance = { amont = 2,",
         r"stages\.triage\.priority_allowance\.amont"),
    ],
)
def test_bad_files_name_the_problem_and_the_file(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(PolicyError, match=expected) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)


def test_missing_stage(tmp_path: Path) -> None:
    text = GOOD[: GOOD.index("[stages.assessment]")]
    with pytest.raises(PolicyError, match="missing stage 'assessment'"):
        load_policy(write(tmp_path, text))


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(write(tmp_path, "warning_share = = 0.8\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the SLA policy file .*nowhere.toml"):
        load_policy(tmp_path / "nowhere.toml")


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)
