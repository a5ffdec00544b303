"""`policy check`'s comparison: each open clock's deadline under the policy in force and under the new one."""
from __future__ import annotations

from datetime import datetime, timezone

from earlyhelp.workflows.policy_check import MEASURES, OpenClock, compare
from earlyhelp.workflows.sla_clock import Pause
from earlyhelp.workflows.sla_policy import load_policy

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)  # a Wednesday
CURRENT = load_policy()
STRICTER = CURRENT.model_copy(update={"stages": {
    **CURRENT.stages,
    "triage": CURRENT.stages["triage"].model_copy(update={"allowance": CURRENT.stages["triage"].allowance.model_copy(
        update={"amount": 3})}),
    "allocation": CURRENT.stages["allocation"].model_copy(update={"allowance": CURRENT.stages["allocation"].allowance.model_copy(
        update={"amount": 1})}),
}})


def clock(stage, started, district="Dover", priority=False, pauses=()):
    return OpenClock(stage, priority, started, tuple(pauses), district)


def test_a_stricter_policy_makes_clocks_newly_overdue_and_says_where():
    clocks = [
        clock("triage", datetime(2026, 11, 20, 9, tzinfo=UTC)),                  # 5 days in: overdue only under 3
        clock("triage", datetime(2026, 11, 24, 9, tzinfo=UTC), "Maidstone"),     # 1 day in: neither
        clock("triage", datetime(2026, 11, 20, 9, tzinfo=UTC), priority=True),   # priority: 2 days under both
        clock("allocation", datetime(2026, 11, 23, 10, tzinfo=UTC)),             # Monday: due Friday / Tuesday
        clock("allocation", datetime(2026, 11, 23, 10, tzinfo=UTC), "Maidstone",
              pauses=[Pause(datetime(2026, 11, 23, 11, tzinfo=UTC), None)]),     # waiting: no deadline
    ]
    result = compare(clocks, CURRENT, STRICTER, NOW)
    assert result["stages"]["triage"] == {"open": 3, "overdue_now": 1, "overdue_under_new": 2, "newly_overdue": 1,
                                          "no_longer_overdue": 0}
    assert result["stages"]["allocation"] == {"open": 2, "overdue_now": 0, "overdue_under_new": 1,
                                              "newly_overdue": 1, "no_longer_overdue": 0}
    assert result["stages"]["assessment"] == dict.fromkeys(MEASURES, 0)
    assert result["by_district"]["Maidstone"]["triage"]["newly_overdue"] == 0
    assert result["by_district"]["Dover"]["allocation"]["newly_overdue"] == 1


def test_the_same_policy_changes_nothing_and_a_laxer_one_relieves():
    clocks = [clock("triage", datetime(2026, 11, 1, 9, tzinfo=UTC))]
    same = compare(clocks, CURRENT, CURRENT, NOW)["stages"]["triage"]
    assert same["overdue_now"] == same["overdue_under_new"] == 1 and same["newly_overdue"] == same["no_longer_overdue"] == 0
    relieved = compare(clocks, STRICTER, CURRENT, datetime(2026, 11, 10, tzinfo=UTC))["stages"]["triage"]
    assert relieved["no_longer_overdue"] == 1 and relieved["overdue_under_new"] == 0
