"""CaseFlow: what notifications and commands do to a case, and the changes they record."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest

from earlyhelp.schemas import COMMAND_MODELS
from earlyhelp.workflows.case_flow import Case, CaseFlow, Change
from earlyhelp.workflows.case_machine import TransitionNotAllowed
from earlyhelp.workflows.checks import CHILD_AGED_19_OR_OVER, FAMILY_CONSENT_NOT_GIVEN

from tests.factories import ACTOR, OMIT, command, notification, notification_body

CASE_ID = "case-0001"
WALK = ("triage", "allocate", "assess", "step_down", "close")
WALK_EVENTS = ("case.triaged", "case.allocated", "case.assessed", "case.stepped_down", "case.closed")
WALK_STATES = ("triaged", "allocated", "assessed", "stepped_down", "closed")
SCHOOL_EVENTS = {"allocate": "school.allocated", "step_down": "school.stepped_down", "close": "school.closed"}


@pytest.fixture
def flow() -> CaseFlow:
    return CaseFlow()


def transitions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.is_transition]


def snapshot(case: Case) -> dict:
    return dataclasses.asdict(case)


class Walker:
    """A case opened from a notification, moved on by commands; keeps every change in order."""

    def __init__(self, flow: CaseFlow, n=None) -> None:
        self.flow = flow
        self.notification = n if n is not None else notification()
        self.case, self.changes = flow.open(CASE_ID, self.notification)

    def send(self, name: str, **fields) -> list[Change]:
        outcome = self.flow.apply(self.case, command(name, CASE_ID, **fields), self.notification)
        self.notification = outcome.notification
        self.changes += outcome.changes
        return outcome.changes


# --- open ------------------------------------------------------------------------------------------

def test_a_sufficient_notification_is_received_then_checked_by_the_engine(flow: CaseFlow) -> None:
    n = notification()
    case, changes = flow.open(CASE_ID, n)

    assert [c.event_type for c in changes] == ["case.received", "case.checked"]
    received, checked = changes
    assert (received.sequence, received.state, received.previous_state) == (1, "received", None)
    assert received.data == {"needs_review": []}
    assert (checked.sequence, checked.state, checked.previous_state) == (2, "checked", "received")
    assert checked.data["by"] == "engine"
    for change in changes:
        assert change.is_transition
        assert change.caused_by == n.notification_id
        assert change.occurred_at == n.received_at
        assert change.actor is None

    assert (case.state, case.version, case.return_state) == ("checked", 2, None)
    assert (case.case_id, case.notification_id) == (CASE_ID, n.notification_id)
    assert (case.kind, case.source, case.priority) == ("request_for_support", "school", False)
    assert (case.school_urn, case.share_with_school, case.received_at) == ("118923", True, n.received_at)
    assert (case.district, case.service, case.team, case.worker_id) == (None, None, None, None)


def test_open_records_the_notifications_priority_and_source(flow: CaseFlow) -> None:
    case, _ = flow.open(CASE_ID, notification(priority=True, kind="step_down", referrer={"source": "social_care"}))
    assert (case.priority, case.kind, case.source) == (True, "step_down", "social_care")


def test_an_insufficient_notification_goes_to_awaiting_information_naming_what_is_missing(flow: CaseFlow) -> None:
    case, changes = flow.open(CASE_ID, notification(child_voice=OMIT, referrer={"contact_email": OMIT,
                                                                                 "contact_phone": OMIT}))
    assert [c.event_type for c in changes] == ["case.received", "case.information_requested"]
    received, requested = changes
    assert received.data == {"needs_review": []}
    assert (requested.sequence, requested.state, requested.previous_state) == (2, "awaiting_information", "received")
    assert sorted(requested.data["missing"]) == sorted(
        ["child_voice", "referrer.contact_email", "referrer.contact_phone"]
    )
    assert (case.state, case.return_state, case.version) == ("awaiting_information", "received", 2)


@pytest.mark.parametrize(
    ("overrides", "reasons"),
    [
        ({"consent": OMIT}, [FAMILY_CONSENT_NOT_GIVEN]),
        ({"consent": {"family_consents": False}}, [FAMILY_CONSENT_NOT_GIVEN]),
        ({"child": {"date_of_birth": "2007-11-20"}}, [CHILD_AGED_19_OR_OVER]),
        ({"child": {"date_of_birth": "2000-01-01"}, "consent": OMIT}, [CHILD_AGED_19_OR_OVER, FAMILY_CONSENT_NOT_GIVEN]),
        # needs review and something missing: a person decides first
        ({"consent": OMIT, "child_voice": OMIT}, [FAMILY_CONSENT_NOT_GIVEN]),
    ],
    ids=["no_consent", "family_refuses", "aged_19", "adult_without_consent", "review_and_missing"],
)
def test_a_notification_needing_review_stays_received_with_the_reasons(
    flow: CaseFlow, overrides: dict, reasons: list[str]
) -> None:
    case, changes = flow.open(CASE_ID, notification(**overrides))
    assert [c.event_type for c in changes] == ["case.received"]
    assert sorted(changes[0].data["needs_review"]) == sorted(reasons)
    assert (changes[0].sequence, changes[0].state) == (1, "received")
    assert (case.state, case.version, case.return_state) == ("received", 1, None)


def test_a_person_accepts_a_case_needing_review_with_check(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(consent=OMIT))
    cmd = command("check", CASE_ID)
    outcome = flow.apply(walker.case, cmd, walker.notification)
    [checked] = outcome.changes
    assert (checked.event_type, checked.sequence, checked.state, checked.previous_state) == (
        "case.checked", 2, "checked", "received")
    assert checked.caused_by == cmd.command_id
    assert checked.actor == ACTOR
    assert checked.occurred_at == cmd.issued_at
    assert checked.data.get("by") != "engine"


def test_a_person_closes_a_case_needing_review(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(child={"date_of_birth": "2000-01-01"}))
    [closed] = transitions(walker.send("close", reason="ineligible"))
    assert (closed.event_type, closed.state, closed.previous_state, closed.sequence) == (
        "case.closed", "closed", "received", 2)
    assert closed.data["reason"] == "ineligible"


# --- the whole way through -----------------------------------------------------------------------

def test_commands_walk_a_case_from_checked_to_closed(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(consent={"share_with_school": False}))
    assert walker.case.state == "checked"
    previous = "checked"
    for name, event_type, state in zip(WALK, WALK_EVENTS, WALK_STATES):
        before = walker.case.version
        cmd = command(name, CASE_ID)
        outcome = flow.apply(walker.case, cmd, walker.notification)
        [change] = outcome.changes
        assert outcome.notification is walker.notification  # only provide_information changes the details
        assert (change.event_type, change.state, change.previous_state) == (event_type, state, previous)
        assert change.sequence == before + 1 == walker.case.version
        assert (change.caused_by, change.actor, change.occurred_at) == (cmd.command_id, ACTOR, cmd.issued_at)
        assert change.is_transition
        assert walker.case.state == state
        previous = state
    assert walker.case.version == 7


def test_the_walk_records_the_cases_facts(flow: CaseFlow) -> None:
    walker = Walker(flow)
    [triaged] = walker.send("triage", service="open_access", district="tonbridge-and-malling")
    assert (walker.case.service, walker.case.district) == ("open_access", "Tonbridge and Malling")
    assert triaged.data == {"service": "open_access", "district": "Tonbridge and Malling", "priority": False}

    allocated = walker.send("allocate", team="West Kent EHU", worker_id="worker-7")[0]
    assert (walker.case.team, walker.case.worker_id) == ("West Kent EHU", "worker-7")
    assert (allocated.data["team"], allocated.data["worker_id"]) == ("West Kent EHU", "worker-7")

    [assessed] = transitions(walker.send("assess", outcome="plan_agreed", plan_summary=OMIT))
    assert assessed.data["outcome"] == "plan_agreed"
    [stepped] = transitions(walker.send("step_down", to="universal"))
    assert stepped.data["to"] == "universal"
    [closed] = transitions(walker.send("close", reason="needs_met"))
    assert closed.data["reason"] == "needs_met"


def test_allocated_carries_the_child_and_the_notifiers_contact(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(child={"nhs_number": OMIT}))
    walker.send("triage")
    allocated = walker.send("allocate")[0]
    assert allocated.event_type == "case.allocated"
    child, notifier = allocated.data["child"], allocated.data["notifier"]
    assert child == {
        "given_name": "Sam", "family_name": "Taylor", "date_of_birth": "2015-05-02",
        "postcode": "ME14 1AA", "school_urn": "118923",
    }
    assert notifier == {
        "source": "school", "organisation": "Oakwood Primary School", "contact_name": "J. Patel",
        "contact_email": "dsl@oakwood.example", "contact_phone": "01622 000000",
    }
    json.dumps(allocated.data)  # ready for an event body


def test_no_other_case_change_carries_the_childs_details_or_free_text(flow: CaseFlow) -> None:
    n = notification(child_voice=OMIT)
    walker = Walker(flow, n)
    walker.send("provide_information", fields={"child_voice": "Sam wants to sleep better."})
    for name in WALK:
        walker.send(name)
    personal = ["Sam", "Taylor", "2015-05-02", "ME14 1AA", "Patel", "dsl@oakwood", "01622", n.reason,
                n.support_already_offered, n.intended_outcome, "sleep better", "Weekly sessions"]
    for change in walker.changes:
        if change.event_type == "case.allocated" or change.event_type.startswith("school."):
            continue
        text = json.dumps(change.data)
        assert not [p for p in personal if p in text], change.event_type


def test_sequences_rise_by_one_through_intake_information_and_commands(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(child_voice=OMIT))
    walker.send("provide_information", fields={"child_voice": "Happy to talk."})
    walker.send("request_information", missing=["referrer.contact_name"])
    walker.send("provide_information", fields={"referrer.contact_name": "Ms Patel"})
    for name in WALK:
        walker.send(name)
    moves = transitions(walker.changes)
    assert [c.sequence for c in moves] == list(range(1, len(moves) + 1))
    assert walker.case.version == len(moves)
    for before, after in zip(moves, moves[1:]):
        assert after.previous_state == before.state
    assert list(flow.machine._machine.models) == []


# --- school changes --------------------------------------------------------------------------------

def _school_changes(flow: CaseFlow, n) -> list[Change]:
    walker = Walker(flow, n)
    if walker.case.state == "received":
        walker.send("check")
    for name in WALK:
        walker.send(name)
    return [c for c in walker.changes if not c.is_transition]


@pytest.mark.parametrize(
    ("overrides", "urn"),
    [
        ({}, "118923"),
        ({"child": {"school_urn": "100001"}}, "100001"),  # the child's own school wins over the referrer's
        ({"child": {"school_urn": OMIT}}, "118923"),       # a school referred: its own URN
    ],
    ids=["child_urn", "child_urn_differs", "referring_school"],
)
def test_the_school_is_told_of_allocation_step_down_and_closure_when_shared_and_known(
    flow: CaseFlow, overrides: dict, urn: str
) -> None:
    school = _school_changes(flow, notification(**overrides))
    assert [c.event_type for c in school] == ["school.allocated", "school.stepped_down", "school.closed"]
    for change in school:
        assert change.is_transition is False
        assert change.data["school_urn"] == urn
        assert change.data["child"] == {"given_name": "Sam", "family_name": "Taylor"}


def test_a_school_change_shares_its_transitions_sequence_and_follows_it(flow: CaseFlow) -> None:
    walker = Walker(flow)
    walker.send("triage")
    changes = walker.send("allocate")
    assert [c.event_type for c in changes] == ["case.allocated", "school.allocated"]
    allocated, school = changes
    assert (school.sequence, school.state, school.previous_state) == (allocated.sequence, "allocated", "triaged")
    assert (school.caused_by, school.occurred_at, school.actor) == (
        allocated.caused_by, allocated.occurred_at, allocated.actor)
    assert walker.case.version == allocated.sequence  # a school change is not a new version


@pytest.mark.parametrize(
    "overrides",
    [
        {"consent": {"share_with_school": False}},
        {"consent": {"share_with_school": OMIT}},
        {"consent": {"share_with_school": None}},
        {"consent": OMIT, "kind": "step_down"},
        {"child": {"school_urn": OMIT}, "referrer": {"source": "health"}},  # not a school referral
        {"child": {"school_urn": OMIT}, "referrer": {"school_urn": OMIT}},
    ],
    ids=["not_shared", "share_left_out", "share_null", "no_consent", "referrer_not_a_school", "no_urn"],
)
def test_the_school_is_not_told_without_consent_to_share_or_a_known_school(flow: CaseFlow, overrides: dict) -> None:
    assert _school_changes(flow, notification(**overrides)) == []


@pytest.mark.parametrize("name", ["triage", "assess"])
def test_triage_and_assessment_are_not_told_to_the_school(flow: CaseFlow, name: str) -> None:
    walker = Walker(flow)
    for step in WALK[: WALK.index(name) + 1]:
        changes = walker.send(step)
    assert all(c.is_transition for c in changes)


# --- provide_information -----------------------------------------------------------------------------

def test_information_provided_back_to_received_runs_the_checks_again(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(child_voice=OMIT))
    assert walker.case.state == "awaiting_information"
    cmd = command("provide_information", CASE_ID, fields={"child_voice": "Sam wants to talk to someone."})
    outcome = flow.apply(walker.case, cmd, walker.notification)

    assert [c.event_type for c in outcome.changes] == ["case.information_provided", "case.checked"]
    provided, checked = outcome.changes
    assert (provided.sequence, provided.state, provided.previous_state) == (3, "received", "awaiting_information")
    assert provided.data["fields"] == ["child_voice"]
    assert (checked.sequence, checked.state, checked.previous_state) == (4, "checked", "received")
    assert checked.data["by"] == "engine"
    assert outcome.notification.child_voice == "Sam wants to talk to someone."
    assert (walker.case.state, walker.case.return_state, walker.case.version) == ("checked", None, 4)


def test_information_still_incomplete_is_requested_again(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(child_voice=OMIT, intended_outcome=OMIT))
    changes = walker.send("provide_information", fields={"child_voice": "Sam is worried."})
    assert [c.event_type for c in changes] == ["case.information_provided", "case.information_requested"]
    assert changes[1].data["missing"] == ["intended_outcome"]
    assert (walker.case.state, walker.case.return_state) == ("awaiting_information", "received")


def test_information_that_needs_review_leaves_the_case_received(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(child_voice=OMIT, consent=OMIT))  # needs review: stays received
    walker.send("request_information", missing=["child_voice"])
    changes = walker.send("provide_information", fields={"child_voice": "Sam is worried."})
    assert [c.event_type for c in changes] == ["case.information_provided"]
    assert changes[0].data["needs_review"] == [FAMILY_CONSENT_NOT_GIVEN]
    assert (walker.case.state, walker.case.version) == ("received", 3)


@pytest.mark.parametrize("origin", ["checked", "triaged"])
def test_information_provided_returns_to_checked_or_triaged_without_rechecking(flow: CaseFlow, origin: str) -> None:
    walker = Walker(flow)
    if origin == "triaged":
        walker.send("triage")
    [requested] = walker.send("request_information", missing=["child.upn", "referrer.contact_name"])
    assert (requested.event_type, requested.state, requested.previous_state) == (
        "case.information_requested", "awaiting_information", origin)
    assert requested.data["missing"] == ["child.upn", "referrer.contact_name"]
    assert walker.case.return_state == origin

    changes = walker.send("provide_information", fields={"referrer.contact_name": "Ms J. Patel"})
    assert [c.event_type for c in changes] == ["case.information_provided"]
    assert (changes[0].state, changes[0].previous_state) == (origin, "awaiting_information")
    assert (walker.case.state, walker.case.return_state) == (origin, None)
    assert walker.notification.referrer.contact_name == "Ms J. Patel"


def test_information_provided_names_the_paths_not_the_values(flow: CaseFlow) -> None:
    walker = Walker(flow)
    walker.send("request_information", missing=["child.postcode"])
    [provided] = walker.send("provide_information", fields={"child.postcode": "CT1 2AB"})
    assert provided.data == {"fields": ["child.postcode"]}


def test_provided_school_details_decide_the_school_changes(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(consent={"share_with_school": False}, child={"school_urn": OMIT},
                                       referrer={"source": "health", "school_urn": OMIT}))
    walker.send("triage")
    assert (walker.case.school_urn, walker.case.share_with_school) == (None, False)
    walker.send("request_information", missing=["child.school_urn"])
    walker.send("provide_information", fields={"child.school_urn": "137001"})
    walker.send("record_consent", share_with_school=True)
    assert (walker.case.school_urn, walker.case.share_with_school) == ("137001", True)
    changes = walker.send("allocate")
    assert [c.event_type for c in changes] == ["case.allocated", "school.allocated"]
    assert changes[1].data["school_urn"] == "137001"


def test_provided_details_that_make_the_notification_invalid_are_refused_before_anything_changes(
    flow: CaseFlow,
) -> None:
    from earlyhelp.schemas import MessageRefused

    walker = Walker(flow)
    walker.send("request_information", missing=["child.expected_date_of_birth", "child.school_urn"])
    before, details = snapshot(walker.case), walker.notification.model_dump()
    # The child already has a date of birth: an expected date as well is invalid.
    cmd = command("provide_information", CASE_ID,
                  fields={"child.expected_date_of_birth": "2027-01-10", "child.school_urn": "100001"})
    with pytest.raises(MessageRefused):
        flow.apply(walker.case, cmd, walker.notification)
    assert snapshot(walker.case) == before
    assert walker.notification.model_dump() == details


def test_a_date_of_birth_provided_for_an_unborn_child_replaces_the_expected_date(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(child={"date_of_birth": OMIT, "expected_date_of_birth": "2026-10-01"}))
    walker.send("request_information", missing=["child.date_of_birth"])
    walker.send("provide_information", fields={"child.date_of_birth": "2026-10-03"})
    child = walker.notification.child
    assert (child.date_of_birth.isoformat(), child.expected_date_of_birth) == ("2026-10-03", None)
    assert walker.case.state == "checked"


# --- triage and priority -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("notified", "triaged", "expected"),
    [(False, True, True), (True, False, False), (False, OMIT, False), (True, OMIT, True), (True, None, True)],
    ids=["raised", "lowered", "kept_normal", "kept_priority", "null_keeps"],
)
def test_triage_with_a_priority_changes_the_cases_priority(
    flow: CaseFlow, notified: bool, triaged: object, expected: bool
) -> None:
    walker = Walker(flow, notification(priority=notified))
    [change] = walker.send("triage", priority=triaged)
    assert walker.case.priority is expected
    assert change.data["priority"] is expected


# --- refused commands change nothing -----------------------------------------------------------------

ALL_COMMANDS = tuple(COMMAND_MODELS)
ALLOWED_FROM = {
    "check": {"received"},
    "request_information": {"received", "checked", "triaged"},
    "provide_information": {"awaiting_information"},
    "triage": {"checked"},
    "allocate": {"triaged"},
    "assess": {"allocated"},
    "step_down": {"assessed"},
    "close": {"received", "checked", "awaiting_information", "triaged", "allocated", "assessed", "stepped_down"},
    "record_consent": {"received", "checked", "awaiting_information", "triaged", "allocated", "assessed",
                       "stepped_down"},
    "extend_clock": {"received", "checked", "awaiting_information", "triaged", "allocated", "assessed",
                     "stepped_down"},
}
ROUTES = {  # how to bring a case opened from the default notification to each state
    "received": ("consent", []),
    "checked": (None, []),
    "awaiting_information": (None, ["request_information"]),
    "triaged": (None, ["triage"]),
    "allocated": (None, ["triage", "allocate"]),
    "assessed": (None, ["triage", "allocate", "assess"]),
    "stepped_down": (None, ["triage", "allocate", "assess", "step_down"]),
    "closed": (None, ["triage", "close"]),
}
REFUSALS = [(state, name) for state in ROUTES for name in ALL_COMMANDS if state not in ALLOWED_FROM[name]]


def walker_in(flow: CaseFlow, state: str) -> Walker:
    needs_review, steps = ROUTES[state]
    walker = Walker(flow, notification(consent=OMIT) if needs_review else notification())
    for step in steps:
        walker.send(step)
    assert walker.case.state == state
    return walker


def test_the_command_models_are_the_contracts_commands() -> None:
    assert set(ALL_COMMANDS) == set(ALLOWED_FROM)


@pytest.mark.parametrize(("state", "name"), REFUSALS)
def test_a_refused_command_leaves_the_case_and_its_details_unchanged(flow: CaseFlow, state: str, name: str) -> None:
    walker = walker_in(flow, state)
    fields = {
        "triage": {"district": "Thanet", "priority": True},
        "allocate": {"team": "Another team", "worker_id": "worker-9"},
        "provide_information": {"fields": {"child.school_urn": "100001"}},
        "record_consent": {"share_with_school": False, "family_consent": False},
    }.get(name, {})
    before = snapshot(walker.case)
    details = walker.notification.model_dump()
    with pytest.raises(TransitionNotAllowed) as refused:
        flow.apply(walker.case, command(name, CASE_ID, **fields), walker.notification)
    assert (refused.value.trigger, refused.value.state) == (name, state)
    assert snapshot(walker.case) == before  # state, version, district, team, school, priority: all as they were
    assert walker.notification.model_dump() == details
    assert list(flow.machine._machine.models) == []


def test_a_refused_command_may_be_sent_again_once_the_state_allows_it(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(consent=OMIT))
    cmd = command("triage", CASE_ID, district="Dover")
    with pytest.raises(TransitionNotAllowed):
        flow.apply(walker.case, cmd, walker.notification)
    walker.send("check")
    [triaged] = flow.apply(walker.case, cmd, walker.notification).changes
    assert (triaged.sequence, triaged.caused_by, walker.case.district) == (3, cmd.command_id, "Dover")


def test_one_flow_uses_one_machine_for_all_its_cases() -> None:
    flow = CaseFlow()
    machine = flow.machine
    walkers = [Walker(flow) for _ in range(5)]
    for walker in walkers:
        walker.send("triage")
    assert flow.machine is machine
    assert list(machine._machine.models) == []
    assert CaseFlow(machine).machine is machine


# --- purity ------------------------------------------------------------------------------------------

def test_changes_carry_the_messages_times_not_the_clock(flow: CaseFlow) -> None:
    n = notification(received_at="2026-11-02T08:00:00+00:00")
    walker = Walker(flow, n)
    walker.send("triage", issued_at="2026-11-03T10:30:00+00:00")
    times = [c.occurred_at for c in walker.changes]
    assert times == [n.received_at, n.received_at, datetime.fromisoformat("2026-11-03T10:30:00+00:00")]


def test_open_does_not_change_the_notification(flow: CaseFlow) -> None:
    body = notification_body(child_voice=OMIT)
    n = notification(child_voice=OMIT)
    flow.open(CASE_ID, n)
    assert n.model_dump(mode="json", exclude_none=True)["child"] == body["child"]


# --- issue 11: requested paths, consent, school rules, order of commands ---------------------------

def test_provide_information_may_set_only_the_paths_the_open_request_named(flow: CaseFlow) -> None:
    from earlyhelp.schemas import MessageRefused

    walker = Walker(flow)
    walker.send("request_information", missing=["child_voice"])
    assert walker.case.requested_paths == ["child_voice"]
    before, details = snapshot(walker.case), walker.notification.model_dump()
    cmd = command("provide_information", CASE_ID, fields={"child_voice": "ok", "referrer.contact_email": "x@evil.example"})
    with pytest.raises(MessageRefused) as refused:
        flow.apply(walker.case, cmd, walker.notification)
    assert refused.value.errors == ["fields.referrer.contact_email: not requested"]
    assert "referrer.contact_email" in refused.value.reason and "x@evil" not in refused.value.reason
    assert snapshot(walker.case) == before and walker.notification.model_dump() == details
    walker.send("provide_information", fields={"child_voice": "ok"})
    assert walker.case.requested_paths is None  # the request is answered: nothing more may be provided


def test_the_engines_own_request_names_the_paths_that_may_be_provided(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(referrer={"contact_email": OMIT, "contact_phone": OMIT}))
    assert walker.case.requested_paths == ["referrer.contact_email", "referrer.contact_phone"]
    walker.send("provide_information", fields={"referrer.contact_phone": "01622 111111"})
    assert (walker.case.state, walker.case.requested_paths) == ("checked", None)


def test_closing_forgets_the_open_request(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(child_voice=OMIT))
    walker.send("close", reason="moved_away")
    assert walker.case.requested_paths is None


@pytest.mark.parametrize("state", ["received", "checked", "awaiting_information", "triaged", "allocated"])
def test_record_consent_changes_consent_not_the_state(flow: CaseFlow, state: str) -> None:
    walker = walker_in(flow, state)
    version, return_state = walker.case.version, walker.case.return_state
    [changed] = walker.send("record_consent", share_with_school=False, family_consent=True)
    assert (changed.event_type, changed.state, changed.previous_state) == ("case.consent_changed", state, state)
    assert changed.data == {"share_with_school": False, "family_consent": True}
    assert changed.is_transition and changed.sequence == version + 1 == walker.case.version
    assert (walker.case.state, walker.case.return_state, walker.case.share_with_school) == (state, return_state, False)
    consent = walker.notification.consent
    assert (consent.share_with_school, consent.family_consents) == (False, True)


def test_record_consent_without_family_consent_keeps_what_was_recorded(flow: CaseFlow) -> None:
    walker = Walker(flow)
    [changed] = walker.send("record_consent", share_with_school=False)
    assert changed.data == {"share_with_school": False, "family_consent": None}
    assert walker.notification.consent.family_consents is True


def test_after_consent_is_withdrawn_no_school_event_is_sent_and_given_again_they_resume(flow: CaseFlow) -> None:
    walker = Walker(flow)
    walker.send("triage")
    assert [c.event_type for c in walker.send("allocate")] == ["case.allocated", "school.allocated"]
    walker.send("record_consent", share_with_school=False)
    walker.send("assess")
    assert [c.event_type for c in walker.send("step_down")] == ["case.stepped_down"]
    walker.send("record_consent", share_with_school=True)
    assert [c.event_type for c in walker.send("close")] == ["case.closed", "school.closed"]


def test_a_case_closed_before_allocation_tells_the_school_nothing(flow: CaseFlow) -> None:
    walker = Walker(flow)
    walker.send("triage")
    assert [c.event_type for c in walker.send("close")] == ["case.closed"]


def test_a_school_not_told_of_the_allocation_hears_nothing_later(flow: CaseFlow) -> None:
    walker = Walker(flow, notification(consent={"share_with_school": False}))
    walker.send("triage")
    assert [c.event_type for c in walker.send("allocate")] == ["case.allocated"]
    walker.send("record_consent", share_with_school=True)  # consent now, but the school never heard of the case
    walker.send("assess")
    assert [c.event_type for c in walker.send("step_down")] == ["case.stepped_down"]
    assert [c.event_type for c in walker.send("close")] == ["case.closed"]


def test_a_command_issued_before_the_cases_latest_change_is_out_of_order(flow: CaseFlow) -> None:
    from earlyhelp.workflows.case_flow import CommandOutOfOrder

    walker = Walker(flow)
    assert walker.case.last_occurred_at == walker.notification.received_at  # the engine's checks
    walker.send("triage", issued_at="2026-11-22T10:00:00Z")
    before = snapshot(walker.case)
    with pytest.raises(CommandOutOfOrder) as late:
        flow.apply(walker.case, command("allocate", CASE_ID, issued_at="2001-01-01T00:00:00Z"), walker.notification)
    assert late.value.last_occurred_at.isoformat() == "2026-11-22T10:00:00+00:00"
    assert snapshot(walker.case) == before
    walker.send("allocate", issued_at="2026-11-22T10:00:00Z")  # at the same moment is in order
    assert walker.case.state == "allocated"


def test_a_command_the_state_does_not_allow_is_refused_for_that_even_when_also_out_of_order(flow: CaseFlow) -> None:
    walker = Walker(flow)
    with pytest.raises(TransitionNotAllowed):
        flow.apply(walker.case, command("allocate", CASE_ID, issued_at="2001-01-01T00:00:00Z"), walker.notification)
