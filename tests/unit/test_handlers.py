"""The handlers and the batch logic on the in-memory store (persistence/memory_store.py): no broker, no database.

The same paths the integration tests drive through RabbitMQ and SQLite/PostgreSQL, in milliseconds: intake,
commands, repeats, conflicts, refusals, states that do not allow a command, commands out of order, the
senders policy, and the batch's answers to a lost race, a database outage and a message that keeps failing.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from earlyhelp.consumers.batch import ATTEMPTS_BEFORE_DEAD_LETTER, BatchProcessor
from earlyhelp.consumers.delivery import Delivery
from earlyhelp.persistence.case_store import ConcurrencyConflict
from earlyhelp.persistence.memory_store import MemoryDatabase, MemoryStore
from earlyhelp.schemas import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, DEFAULT_DISTRICTS, NOTIFICATIONS_EXCHANGE
from earlyhelp.workflows.case_flow import CaseFlow
from earlyhelp.workflows.commands import COMMANDS, command_table
from earlyhelp.workflows.senders import senders_from_text

from tests.factories import NOW, OMIT, command_body, encode, notification_body

SENDERS = """
[senders.school-portal]
notifications = ["school"]
[senders.unit-maidstone]
commands = ["check", "triage", "allocate", "close"]
roles = ["early_help_practitioner"]
districts = ["Maidstone", "unassigned"]
"""


class Engine:
    """A BatchProcessor on a MemoryDatabase, at the factories' fixed instant."""

    def __init__(self, flow: CaseFlow | None = None, db: MemoryDatabase | None = None) -> None:
        self.db = db if db is not None else MemoryDatabase()
        self.sleeps: list[float] = []
        self.processor = BatchProcessor(None, lambda: NOW, DEFAULT_DISTRICTS, flow=flow or CaseFlow(),
                                        transactions=self.db.transaction, sleep=self.sleeps.append)

    def send(self, *deliveries: Delivery) -> list[str]:
        return [h.outcome for h in self.processor.process(list(deliveries)).handled]

    def events(self, event_type: str | None = None) -> list[dict]:
        found = [json.loads(row["body"]) for row in self.db.outbox if row["routing_key"] != DEAD_LETTER_QUEUE]
        return [e for e in found if event_type is None or e["event_type"] == event_type]

    def dead_letters(self) -> list[dict]:
        return [row for row in self.db.outbox if row["routing_key"] == DEAD_LETTER_QUEUE]

    def case_id(self) -> str:
        [case_id] = self.db.cases
        return case_id


def notification(user_id: str | None = None, **overrides) -> Delivery:
    body = notification_body(**overrides)
    return Delivery(encode(body), NOTIFICATIONS_EXCHANGE, f"notification.{body['referrer']['source']}",
                    properties={"user_id": user_id} if user_id else {})


def command(name: str, case_id: str, user_id: str | None = None, **fields) -> Delivery:
    return Delivery(encode(command_body(name, case_id, **fields)), COMMANDS_EXCHANGE, f"case.{name}",
                    properties={"user_id": user_id} if user_id else {})


@pytest.fixture
def engine() -> Engine:
    return Engine()


# --- the path of a case ---------------------------------------------------------------------------

def test_intake_triage_allocate_stage_history_events_and_processed_ids_in_one_transaction_each(engine) -> None:
    assert engine.send(notification()) == ["opened"]
    case_id = engine.case_id()
    assert engine.send(command("triage", case_id), command("allocate", case_id)) == ["applied", "applied"]

    assert [e["event_type"] for e in engine.events()] == [
        "case.received", "referrer.received", "case.checked", "case.triaged", "referrer.decided", "case.allocated",
        "referrer.allocated", "school.allocated"]
    assert [e["sequence"] for e in engine.events()] == [1, 1, 2, 3, 3, 4, 4, 4]
    allocated = engine.events("case.allocated")[0]
    assert allocated["district"] == "Maidstone" and allocated["data"]["child"]["given_name"] == "Sam"
    assert [r["to_state"] for r in engine.db.history] == ["received", "checked", "triaged", "allocated"]
    assert "child" not in engine.db.history[-1]["data"]  # the history keeps no personal details
    case = engine.db.cases[case_id]
    assert (case.state, case.version, case.team) == ("allocated", 4, "Maidstone Early Help Unit 2")
    assert len(engine.db.processed) == 3 and engine.db.transactions == 2
    assert not engine.dead_letters()


def test_an_exact_repeat_changes_nothing(engine) -> None:
    first = notification()
    engine.send(first)
    before = (len(engine.db.outbox), len(engine.db.history))
    assert engine.send(first) == ["repeat"]
    triage = command("triage", engine.case_id())
    assert engine.send(triage, triage) == ["applied", "repeat"]  # a repeat within one batch too
    assert engine.send(triage) == ["repeat"]
    assert len(engine.events("case.triaged")) == 1 and len(engine.db.outbox) == before[0] + 2  # and referrer.decided


def test_the_same_id_with_other_content_is_refused_as_a_conflict_naming_the_first(engine) -> None:
    engine.send(notification())
    assert engine.send(notification(reason="Another concern altogether.")) == ["conflict"]
    [rejected] = engine.events("notification.rejected")
    assert rejected["code"] == "conflict" and engine.case_id() in rejected["reason"]
    assert len(engine.dead_letters()) == 1 and len(engine.db.cases) == 1


def test_bad_input_is_refused_with_an_event_and_a_dead_letter_copy(engine) -> None:
    assert engine.send(notification(child={"date_of_birth": "not a date"})) == ["refused"]
    [rejected] = engine.events("notification.rejected")
    assert rejected["code"] == "invalid" and rejected["errors"]
    assert len(engine.dead_letters()) == 1 and not engine.db.cases and not engine.db.processed


def test_a_command_for_an_unknown_case_is_refused(engine) -> None:
    assert engine.send(command("triage", "no-such-case")) == ["refused"]
    assert engine.events("command.rejected")[0]["code"] == "invalid"


def test_a_state_that_does_not_allow_the_command_refuses_it_without_a_copy_and_keeps_the_id_free(engine) -> None:
    engine.send(notification())
    allocate = command("allocate", engine.case_id())
    assert engine.send(allocate) == ["not_allowed"]
    [rejected] = engine.events("command.rejected")
    assert (rejected["code"], rejected["command"], rejected["state"]) == ("not_allowed_in_state", "allocate", "checked")
    assert not engine.dead_letters() and engine.db.cases[engine.case_id()].state == "checked"
    engine.send(command("triage", engine.case_id()))
    assert engine.send(allocate) == ["applied"]  # the id was not used up by the refusal


def test_a_command_issued_before_the_cases_latest_change_is_refused_as_out_of_order(engine) -> None:
    engine.send(notification())  # received and checked at 2026-11-20T09:14Z
    assert engine.send(command("triage", engine.case_id(), issued_at="2026-11-20T08:00:00Z")) == ["not_allowed"]
    [rejected] = engine.events("command.rejected")
    assert rejected["code"] == "time_out_of_order" and not engine.dead_letters()
    assert engine.db.cases[engine.case_id()].version == 2


def test_a_refused_command_leaves_the_batchs_view_of_the_case_as_it_was(engine) -> None:
    engine.send(notification())
    case_id = engine.case_id()
    outcomes = engine.send(command("provide_information", case_id), command("triage", case_id))
    assert outcomes == ["not_allowed", "applied"]
    assert engine.db.cases[case_id].version == 3


def test_senders_outside_the_policy_are_refused_before_the_case_is_read() -> None:
    engine = Engine(CaseFlow(senders=senders_from_text(SENDERS, "senders.toml")))
    assert engine.send(notification(user_id="stranger")) == ["refused"]
    assert engine.send(notification()) == ["refused"]  # no user_id
    assert [e["code"] for e in engine.events("notification.rejected")] == ["unknown_sender", "unknown_sender"]
    assert engine.send(notification(user_id="school-portal")) == ["opened"]
    case_id = engine.case_id()
    assert engine.send(command("assess", case_id, user_id="unit-maidstone")) == ["refused"]  # not its command
    assert engine.send(command("triage", case_id, user_id="unit-maidstone", district="Ashford")) == ["refused"]
    assert [e["code"] for e in engine.events("command.rejected")] == ["not_permitted", "not_permitted"]
    assert engine.send(command("triage", case_id, user_id="unit-maidstone")) == ["applied"]


def test_a_command_the_table_does_not_hold_is_refused_as_invalid_and_never_a_fault() -> None:
    engine = Engine(CaseFlow(commands=command_table(*(s for n, s in COMMANDS.items() if n != "triage"))))
    engine.send(notification())
    assert engine.send(command("triage", engine.case_id())) == ["refused"]
    assert engine.events("command.rejected")[0]["code"] == "invalid"
    assert len(engine.dead_letters()) == 1 and engine.db.cases[engine.case_id()].state == "checked"


# --- the batch's answers by cause ------------------------------------------------------------------

def test_a_lost_race_retries_the_batch_which_then_sees_the_other_workers_work(engine, monkeypatch) -> None:
    engine.send(notification())
    case_id = engine.case_id()
    other = Engine(db=engine.db)  # a second worker on the same database moves the case first
    flush, raced = MemoryStore.flush, []

    def flush_after_the_other_worker(store, at):
        if not raced:
            raced.append("racing")
            raced[0] = other.send(command("triage", case_id))
        return flush(store, at)

    monkeypatch.setattr(MemoryStore, "flush", flush_after_the_other_worker)
    assert engine.send(command("close", case_id)) == ["applied"]
    assert raced == [["applied"]] and engine.sleeps  # retried after a short pause
    assert [r["to_state"] for r in engine.db.history][-2:] == ["triaged", "closed"]


def test_a_database_outage_holds_the_batch_and_retries_with_backoff(engine, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    flush, failures = MemoryStore.flush, [1, 2, 3]

    def away_three_times(store, at):
        if failures:
            failures.pop()
            raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))
        return flush(store, at)

    monkeypatch.setattr(MemoryStore, "flush", away_three_times)
    assert engine.send(notification()) == ["opened"]
    assert engine.sleeps == [0.05, 0.1, 0.2] and len(engine.db.cases) == 1


def test_a_message_that_keeps_failing_is_tried_alone_then_dead_lettered_and_the_others_are_handled(
        engine, monkeypatch) -> None:
    from earlyhelp.consumers import handlers

    handle = handlers.handle

    def fails_on_poison(batch, parsed):
        if parsed.message is not None and getattr(parsed.message, "notification_id", "") == "poison":
            raise RuntimeError("a bug in handling")
        return handle(batch, parsed)

    monkeypatch.setattr("earlyhelp.consumers.batch.handle", fails_on_poison)
    outcomes = engine.send(notification(notification_id="poison"), notification(notification_id="good"))
    assert outcomes == ["failed", "opened"]
    [copy] = engine.dead_letters()
    assert f"handling failed {ATTEMPTS_BEFORE_DEAD_LETTER} times (RuntimeError)" in copy["headers"]["x-earlyhelp-error"]
    assert [c.notification_id for c in engine.db.cases.values()] == ["good"]


def test_the_memory_store_refuses_a_case_that_moved_since_it_was_read() -> None:
    db = MemoryDatabase()
    engine = Engine(db=db)
    engine.send(notification())
    case_id = engine.case_id()
    with db.transaction() as first:
        case = first.load_cases([case_id])[case_id]
        with db.transaction() as second:
            moved = second.load_cases([case_id])[case_id]
            moved.version += 1
            second.change_case(moved, case.version)
            second.flush(NOW)
        case.version += 1
        first.change_case(case, case.version - 1)
        with pytest.raises(ConcurrencyConflict):
            first.flush(NOW + timedelta(seconds=1))
        first._flushed = False  # as a rolled-back transaction: nothing written


# --- a child already known: linked, never duplicated (docs/contract.md, Version 1.1) ----------------

NHS, UPN = "9434765919", "B801200005001"


def other_referral(notification_id: str, source: str = "health", reason: str | None = None, **child) -> Delivery:
    """A notification from another referrer, for the child named by `child` (by default Alex Jones, a child
    other than the example's Sam Taylor)."""
    return notification(notification_id=notification_id, kind="request_for_support",
                        referrer={"source": source, "school_urn": OMIT, "organisation": "Maidstone GP"},
                        child={"given_name": "Alex", "family_name": "Jones", "date_of_birth": "2012-03-04",
                               "school_urn": OMIT, **child}, **({"reason": reason} if reason else {}))


def first_case(engine: Engine, **child) -> str:
    assert engine.send(notification(child=child)) == ["opened"]
    return engine.case_id()


@pytest.mark.parametrize("identity, matched", [
    ({"nhs_number": NHS}, ["nhs_number"]),
    ({"upn": UPN}, ["upn"]),
    ({"given_name": "  SAM ", "family_name": "taylor", "date_of_birth": "2015-05-02"}, ["name_dob"]),
])
def test_a_child_already_open_is_linked_by_each_identifier_and_no_second_case_opens(engine, identity, matched) -> None:
    case_id = first_case(engine, nhs_number=NHS, upn=UPN)
    before = engine.db.cases[case_id]
    clocks = {stage: (c.due_at, c.started_at) for stage, c in before.clocks.items()}
    assert engine.send(other_referral("gp-0001", **identity)) == ["linked"]

    assert list(engine.db.cases) == [case_id]  # no second case
    after = engine.db.cases[case_id]
    assert (after.state, after.version, after.last_occurred_at) == (before.state, before.version + 1,
                                                                     before.last_occurred_at)
    assert {stage: (c.due_at, c.started_at) for stage, c in after.clocks.items()} == clocks  # clocks untouched
    [linked] = engine.events("case.notification_linked")
    assert linked["data"] | {"recorded_late_hours": 0} == {"recorded_late_hours": 0, "linked_notification_id": "gp-0001", "source": "health", "kind": "request_for_support",
                              "matched_on": matched}
    assert linked["case_id"] == case_id and linked["state"] == after.state
    assert NHS not in json.dumps(linked) and "Sam" not in json.dumps(linked)  # names of identifiers, never values
    # The linked notification's own referrer hears `linked`, on its own source's key.
    [told] = engine.events("referrer.linked")
    assert (told["notification_id"], told["case_id"], told["source"], told["data"]) == ("gp-0001", case_id, "health", {})
    assert [r["routing_key"] for r in engine.db.outbox if r["event_id"] == told["event_id"]] == ["referrer.health.linked"]
    # Its details are kept with the case; its id is recorded against the case.
    [row] = engine.db.linked
    assert (row["case_id"], row["notification_id"], row["source"], row["matched_on"]) == (
        case_id, "gp-0001", "health", matched)
    assert row["notification"]["child"]["family_name"] in ("Jones", "taylor")
    assert engine.db.processed["notification:health:gp-0001"][1] == case_id
    assert engine.db.history[-1]["event_type"] == "case.notification_linked"


def test_every_identifier_that_matched_is_named_and_a_different_child_opens_its_own_case(engine) -> None:
    case_id = first_case(engine, nhs_number=NHS, upn=UPN)
    assert engine.send(other_referral("gp-0001", nhs_number=NHS, upn=UPN, given_name="Sam", family_name="Taylor",
                                      date_of_birth="2015-05-02")) == ["linked"]
    assert engine.events("case.notification_linked")[0]["data"]["matched_on"] == ["nhs_number", "upn", "name_dob"]
    assert engine.send(other_referral("gp-0002", date_of_birth="2015-05-02")) == ["opened"]  # Alex Jones: another child
    assert len(engine.db.cases) == 2 and case_id in engine.db.cases


def test_a_child_whose_case_closed_within_a_year_opens_a_re_referral_naming_it(engine) -> None:
    case_id = first_case(engine, nhs_number=NHS)
    engine.send(command("close", case_id))  # closed 2026-11-21
    assert engine.send(other_referral("gp-0001", nhs_number=NHS)) == ["opened"]
    [received] = [e for e in engine.events("case.received") if e["case_id"] != case_id]
    assert received["data"]["previous_case_ids"] == [case_id]
    told = [e for e in engine.events("referrer.received") if e["notification_id"] == "gp-0001"]
    assert told and "previous_case_ids" not in told[0]["data"]  # the referrer is not told of earlier cases
    assert not engine.events("case.notification_linked")


def test_only_cases_closed_within_the_year_before_the_new_notification_count_as_re_referrals(engine) -> None:
    # Two earlier cases of the same child: one closed 2025-11-19 (over a year before 2026-11-20T09:14), one 2025-11-21.
    old = notification(notification_id="old-1", received_at="2025-11-01T09:00:00Z", child={"nhs_number": NHS})
    recent = notification(notification_id="old-2", received_at="2025-11-20T09:00:00Z", child={"nhs_number": NHS})
    assert engine.send(old) == ["opened"]
    [old_id] = engine.db.cases
    engine.send(command("close", old_id, issued_at="2025-11-19T09:00:00Z"))
    assert engine.send(recent) == ["opened"]
    [recent_id] = set(engine.db.cases) - {old_id}
    engine.send(command("close", recent_id, issued_at="2025-11-21T09:00:00Z"))
    assert engine.send(other_referral("gp-0001", nhs_number=NHS)) == ["opened"]
    received = [e for e in engine.events("case.received") if e["notification_id"] == "gp-0001"][0]
    assert received["data"]["previous_case_ids"] == [recent_id]


def test_the_re_referral_window_is_a_calendar_year() -> None:
    from datetime import datetime, timezone

    from earlyhelp.consumers.batch import a_year_before

    assert a_year_before(datetime(2028, 2, 29, 9, tzinfo=timezone.utc)) == datetime(2027, 2, 28, 9, tzinfo=timezone.utc)
    assert a_year_before(datetime(2026, 11, 20, 9, tzinfo=timezone.utc)) == datetime(2025, 11, 20, 9, tzinfo=timezone.utc)


def test_repeats_stay_repeats_and_conflicts_stay_conflicts_for_a_linked_notification(engine) -> None:
    case_id = first_case(engine, nhs_number=NHS)
    linked = other_referral("gp-0001", nhs_number=NHS)
    assert engine.send(linked) == ["linked"]
    outbox = len(engine.db.outbox)
    assert engine.send(linked) == ["repeat"]
    assert len(engine.db.outbox) == outbox and len(engine.db.linked) == 1
    assert engine.send(other_referral("gp-0001", nhs_number=NHS, reason="Other words entirely.")) == ["conflict"]
    [rejected] = engine.events("notification.rejected")
    assert rejected["code"] == "conflict" and case_id in rejected["reason"]
    assert len(engine.events("case.notification_linked")) == 1 and len(engine.db.cases) == 1


def test_two_notifications_for_one_new_child_in_one_batch_link_and_the_batch_looks_up_hashes_once(engine) -> None:
    outcomes = engine.send(other_referral("gp-0001", nhs_number=NHS), notification(child={"nhs_number": NHS}),
                           other_referral("gp-0002", upn=UPN, given_name="Robin"))
    assert outcomes == ["opened", "linked", "opened"]
    assert engine.db.identity_lookups == 1  # one look-up for the whole batch, not one per message
    [linked] = engine.events("case.notification_linked")
    first = [cid for cid, c in engine.db.cases.items() if c.notification_id == "gp-0001"][0]
    assert linked["case_id"] == first and linked["data"]["linked_notification_id"] == "oakwood-2026-000457"
    assert engine.db.processed["notification:school:oakwood-2026-000457"][1] == first


def test_a_case_closed_earlier_in_the_same_batch_makes_a_re_referral_not_a_link(engine) -> None:
    case_id = first_case(engine, nhs_number=NHS)
    assert engine.send(command("close", case_id), other_referral("gp-0001", nhs_number=NHS)) == ["applied", "opened"]
    [received] = [e for e in engine.events("case.received") if e["case_id"] != case_id]
    assert received["data"]["previous_case_ids"] == [case_id]


# --- referrers told ----------------------------------------------------------------------------------

def test_the_referrer_hears_each_step_of_its_notification_and_nothing_personal(engine) -> None:
    case_id = first_case(engine)
    engine.send(command("request_information", case_id, missing=["child_voice"]))
    engine.send(command("provide_information", case_id, issued_at="2026-11-21T11:00:00Z"))
    engine.send(command("triage", case_id, issued_at="2026-11-21T12:00:00Z"),
                command("allocate", case_id, issued_at="2026-11-21T13:00:00Z"),
                command("assess", case_id, issued_at="2026-11-21T14:00:00Z"),
                command("step_down", case_id, issued_at="2026-11-21T15:00:00Z"),
                command("close", case_id, issued_at="2026-11-21T16:00:00Z"))
    told = [e for e in engine.events() if e["event_type"].startswith("referrer.")]
    assert [(e["event_type"], e["data"]) for e in told] == [
        ("referrer.received", {}),
        ("referrer.information_requested", {"missing": ["child_voice"]}),
        ("referrer.decided", {"service": "early_help_unit", "district": "Maidstone"}),
        ("referrer.allocated", {"team": "Maidstone Early Help Unit 2"}),
        ("referrer.closed", {"reason": "needs_met", "stepped_down": True}),
    ]
    assert {(e["notification_id"], e["case_id"], e["source"]) for e in told} == {("oakwood-2026-000457", case_id, "school")}
    keys = [r["routing_key"] for r in engine.db.outbox if r["routing_key"].startswith("referrer.")]
    assert keys == ["referrer.school.received", "referrer.school.information_requested", "referrer.school.decided",
                    "referrer.school.allocated", "referrer.school.closed"]
    body = b"".join(r["body"] for r in engine.db.outbox if r["routing_key"].startswith("referrer."))
    for personal in (b"Sam", b"Taylor", b"2015-05-02", b"ME14", b"Patel", b"worker-0042"):
        assert personal not in body


def test_a_linked_referrer_hears_only_that_it_was_linked(engine) -> None:
    case_id = first_case(engine, nhs_number=NHS)
    engine.send(other_referral("gp-0001", nhs_number=NHS))
    engine.send(command("triage", case_id), command("close", case_id))
    health = [e["event_type"] for e in engine.events() if e["event_type"].startswith("referrer.") and e["source"] == "health"]
    assert health == ["referrer.linked"]
    school = [e["event_type"] for e in engine.events() if e["event_type"].startswith("referrer.") and e["source"] == "school"]
    assert school == ["referrer.received", "referrer.decided", "referrer.closed"]
