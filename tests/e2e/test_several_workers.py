"""Several `earlyhelp serve` workers on one PostgreSQL: no lost update, no transition twice."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import case_history, cases
from tests.factories import command_body, encode, notification_body

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CASES = 60


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_three_workers_apply_each_command_once_and_lose_no_update(serve, settings, upstream, tap):
    for _ in range(3):
        serve()
    for i in range(CASES):
        body = notification_body(notification_id=f"workers-{i:03d}")
        assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
        assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok  # a repeat
    case_ids = sorted({e["case_id"] for e in tap.wait_for(lambda e: e["event_type"] == "case.checked",
                                                          count=CASES, timeout=60)})
    # Every command twice (a repeat that two workers may take at once), and two different commands per
    # case racing for the same version: triage, then request_information from `triaged`.
    for case_id in case_ids:
        triage = command_body("triage", case_id)
        for _ in range(2):
            assert upstream.publish("earlyhelp.commands", "case.triage", encode(triage)).ok
    tap.wait_for(lambda e: e["event_type"] == "case.triaged", count=CASES, timeout=60)
    for case_id in case_ids:
        allocate = command_body("allocate", case_id)
        ask = command_body("request_information", case_id, missing=["child_voice"])
        for body, key in ((allocate, "case.allocate"), (ask, "case.request_information"), (allocate, "case.allocate")):
            assert upstream.publish("earlyhelp.commands", key, encode(body)).ok
    # Each case ends allocated, or awaiting information; both orders are legal, neither is lost.
    tap.wait_for(lambda e: e["event_type"] in ("case.allocated", "command.rejected", "case.information_requested")
                 and e.get("case_id") in case_ids and e["event_type"] != "case.checked", count=2 * CASES,
                 timeout=60)
    tap.settle(1.5)
    counts = Counter((e["event_type"], e.get("case_id")) for _, e, _ in tap.events)
    for case_id in case_ids:
        assert counts[("case.received", case_id)] == 1
        assert counts[("case.triaged", case_id)] == 1
        assert counts[("case.allocated", case_id)] <= 1
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == CASES
        rows = conn.execute(select(case_history.c.case_id, func.count(), func.max(case_history.c.sequence))
                            .group_by(case_history.c.case_id)).all()
        versions = dict(conn.execute(select(cases.c.case_id, cases.c.version)).all())
    engine.dispose()
    for case_id, n, top in rows:
        assert n == top == versions[case_id], "every version has exactly one history row: no lost update"
