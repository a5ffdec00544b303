"""The case state machine against the contract's command table (docs/contract.md, "Commands").

The table below is written from the contract, not imported from the code, so a change to the machine
that breaks the contract fails here.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from earlyhelp.workflows.case_machine import CaseMachine, CaseState, TransitionNotAllowed

# --- the contract, by hand -----------------------------------------------------------------------

CONTRACT_STATES = (
    "received", "checked", "awaiting_information", "triaged", "allocated", "assessed", "stepped_down", "closed",
)
OPEN = tuple(s for s in CONTRACT_STATES if s != "closed")
INTERRUPTIBLE = ("received", "checked", "triaged")
RETURNS = "the state it came from"
UNCHANGED = "unchanged"  # docs/contract.md, "Commands added": record_consent leaves the state as it is

# command -> (the states it is allowed from, the state it leads to)
CONTRACT_TABLE: dict[str, tuple[tuple[str, ...], str]] = {
    "check": (("received",), "checked"),
    "request_information": (("received", "checked", "triaged"), "awaiting_information"),
    "provide_information": (("awaiting_information",), RETURNS),
    "triage": (("checked",), "triaged"),
    "allocate": (("triaged",), "allocated"),
    "assess": (("allocated",), "assessed"),
    "step_down": (("assessed",), "stepped_down"),
    "close": (OPEN, "closed"),
    "record_consent": (OPEN, UNCHANGED),
    "extend_clock": (OPEN, UNCHANGED),  # for a running stage: the flow checks the clock
}
CONTRACT_TRIGGERS = tuple(CONTRACT_TABLE)
# The commands that move a case between states (the diagram draws these).
MOVES = tuple(t for t, (_, dest) in CONTRACT_TABLE.items() if dest != UNCHANGED)

# Every edge of the contract's workflow: (from, trigger, to).
CONTRACT_EDGES = frozenset(
    (source, trigger, dest)
    for trigger, (sources, dest) in CONTRACT_TABLE.items()
    if dest not in (RETURNS, UNCHANGED)
    for source in sources
) | frozenset(("awaiting_information", "provide_information", back) for back in INTERRUPTIBLE)
# The state-unchanged commands: (state, trigger, state) for every state they are allowed in.
CONTRACT_LOOPS = frozenset((source, trigger, source) for trigger, (sources, dest) in CONTRACT_TABLE.items()
                           if dest == UNCHANGED for source in sources)

# Names that are attributes `transitions` binds on a model, or methods of CaseState: never commands.
NOT_TRIGGERS = (
    "to_closed", "to_received", "trigger", "may_check", "is_closed", "remember_return_state",
    "forget_return_state", "returns_to_received", "stepped_down", "", "Close", "__init__",
)


def case_in(state: str, return_state: str | None = None) -> CaseState:
    """A case in `state`; one awaiting information came from `return_state` (received by default)."""
    if state == "awaiting_information" and return_state is None:
        return_state = "received"
    return CaseState(state=state, return_state=return_state)


@pytest.fixture(scope="module")
def machine() -> CaseMachine:
    return CaseMachine()


def _allowed(state: str, trigger: str) -> bool:
    return state in CONTRACT_TABLE[trigger][0]


# --- every state x every trigger -----------------------------------------------------------------

ALLOWED = [(s, t) for s in CONTRACT_STATES for t in CONTRACT_TRIGGERS if _allowed(s, t)]
REFUSED = [(s, t) for s in CONTRACT_STATES for t in CONTRACT_TRIGGERS if not _allowed(s, t)]


def test_the_contract_table_covers_every_state_and_the_machine_knows_exactly_these_states() -> None:
    from earlyhelp.workflows import case_machine

    assert set(case_machine.STATES) == set(CONTRACT_STATES)
    assert set(case_machine.TRIGGERS) == set(CONTRACT_TRIGGERS)
    assert len(ALLOWED) + len(REFUSED) == len(CONTRACT_STATES) * len(CONTRACT_TRIGGERS)


@pytest.mark.parametrize(("state", "trigger"), ALLOWED)
def test_a_command_is_accepted_in_each_state_the_contract_lists(machine: CaseMachine, state: str, trigger: str) -> None:
    case = case_in(state)
    dest = CONTRACT_TABLE[trigger][1]
    expected = {RETURNS: case.return_state, UNCHANGED: state}.get(dest, dest)

    machine.require(case, trigger)  # does not raise
    assert machine.fire(case, trigger) == expected
    assert case.state == expected
    assert (state, trigger, case.state) in CONTRACT_EDGES | CONTRACT_LOOPS


@pytest.mark.parametrize(("state", "trigger"), REFUSED)
def test_a_command_is_refused_in_every_state_the_contract_does_not_list(
    machine: CaseMachine, state: str, trigger: str
) -> None:
    case = case_in(state)
    before = (case.state, case.return_state)

    with pytest.raises(TransitionNotAllowed) as refused:
        machine.require(case, trigger)
    assert (refused.value.trigger, refused.value.state) == (trigger, state)
    with pytest.raises(TransitionNotAllowed) as refused:
        machine.fire(case, trigger)
    assert (refused.value.trigger, refused.value.state) == (trigger, state)
    assert (case.state, case.return_state) == before


@pytest.mark.parametrize("state", CONTRACT_STATES)
def test_allowed_triggers_are_exactly_the_contracts_commands_for_the_state(state: str) -> None:
    expected = {t for t in CONTRACT_TRIGGERS if _allowed(state, t)}
    assert set(CaseMachine.allowed_triggers(state)) == expected


@pytest.mark.parametrize("name", NOT_TRIGGERS)
@pytest.mark.parametrize("state", CONTRACT_STATES)
def test_names_that_are_not_commands_are_refused_and_change_nothing(machine: CaseMachine, state: str, name: str) -> None:
    case = case_in(state)
    before = (case.state, case.return_state)
    with pytest.raises(TransitionNotAllowed):
        machine.fire(case, name)
    with pytest.raises(TransitionNotAllowed):
        machine.require(case, name)
    assert (case.state, case.return_state) == before


def test_transition_not_allowed_names_the_trigger_and_state(machine: CaseMachine) -> None:
    with pytest.raises(TransitionNotAllowed, match="closed.*allocate|allocate.*closed"):
        machine.fire(case_in("closed"), "allocate")


# --- awaiting_information returns to where it came from --------------------------------------------

@pytest.mark.parametrize("origin", INTERRUPTIBLE)
def test_awaiting_information_returns_to_the_state_it_came_from(machine: CaseMachine, origin: str) -> None:
    case = case_in(origin)
    assert machine.fire(case, "request_information") == "awaiting_information"
    assert case.return_state == origin
    assert set(CaseMachine.allowed_triggers("awaiting_information")) == {"provide_information", "close",
                                                                         "record_consent", "extend_clock"}

    assert machine.fire(case, "provide_information") == origin
    assert case.state == origin
    assert case.return_state is None


@pytest.mark.parametrize("first", INTERRUPTIBLE)
@pytest.mark.parametrize("second", INTERRUPTIBLE)
def test_each_request_for_information_remembers_its_own_origin(machine: CaseMachine, first: str, second: str) -> None:
    case = case_in(first)
    machine.fire(case, "request_information")
    machine.fire(case, "provide_information")
    case.state = second  # e.g. the case moved on in between
    machine.fire(case, "request_information")
    assert case.return_state == second
    assert machine.fire(case, "provide_information") == second


@pytest.mark.parametrize("return_state", [None, "allocated", "closed", "awaiting_information", "nonsense"])
def test_provide_information_is_refused_without_a_state_to_return_to(
    machine: CaseMachine, return_state: str | None
) -> None:
    case = CaseState(state="awaiting_information", return_state=return_state)
    with pytest.raises(TransitionNotAllowed):
        machine.require(case, "provide_information")
    with pytest.raises(TransitionNotAllowed):
        machine.fire(case, "provide_information")
    assert (case.state, case.return_state) == ("awaiting_information", return_state)


@pytest.mark.parametrize("state", ["allocated", "assessed", "stepped_down", "closed"])
def test_information_cannot_be_requested_once_allocated_or_later(machine: CaseMachine, state: str) -> None:
    with pytest.raises(TransitionNotAllowed):
        machine.fire(case_in(state), "request_information")


# --- close ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("state", OPEN)
def test_close_is_allowed_from_every_open_state(machine: CaseMachine, state: str) -> None:
    case = case_in(state)
    assert machine.fire(case, "close") == "closed"
    assert case.return_state is None  # a case closed while awaiting information forgets where it was


def test_close_is_never_allowed_from_closed(machine: CaseMachine) -> None:
    case = case_in("closed")
    with pytest.raises(TransitionNotAllowed):
        machine.fire(case, "close")
    assert case.state == "closed"
    assert CaseMachine.allowed_triggers("closed") == []


# --- one shared Machine ----------------------------------------------------------------------------

def test_the_machine_is_shared_and_holds_no_case_after_firing() -> None:
    machine = CaseMachine()
    shared = machine._machine
    cases = [case_in(state) for state in CONTRACT_STATES for _ in range(5)]
    for case in cases:
        for trigger in CONTRACT_TRIGGERS:
            try:
                machine.fire(case, trigger)
            except TransitionNotAllowed:
                pass
    assert machine._machine is shared
    assert list(machine._machine.models) == []
    assert all(case.state == "closed" for case in cases)


def test_a_refused_trigger_leaves_no_case_in_the_machine() -> None:
    machine = CaseMachine()
    with pytest.raises(TransitionNotAllowed):
        machine.fire(case_in("closed"), "close")
    with pytest.raises(TransitionNotAllowed):
        machine.fire(CaseState("awaiting_information", None), "provide_information")
    assert list(machine._machine.models) == []


def test_cases_in_different_states_do_not_affect_each_other(machine: CaseMachine) -> None:
    a, b = case_in("received"), case_in("triaged")
    machine.fire(a, "request_information")
    machine.fire(b, "request_information")
    assert machine.fire(b, "provide_information") == "triaged"
    assert machine.fire(a, "provide_information") == "received"


def test_firing_on_the_same_case_again_logs_no_warnings(caplog: pytest.LogCaptureFixture) -> None:
    machine = CaseMachine()
    case = case_in("received")
    machine.fire(case, "check")
    with caplog.at_level(logging.WARNING):
        machine.fire(case, "triage")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- the diagram -----------------------------------------------------------------------------------

def test_mermaid_draws_every_state_and_command_that_moves_a_case() -> None:
    diagram = CaseMachine.mermaid()
    assert "stateDiagram" in diagram
    for state in CONTRACT_STATES:
        assert state in diagram
    for trigger in MOVES:
        assert trigger in diagram
    assert "record_consent" not in diagram  # not a move between states


def test_record_consent_keeps_the_state_and_where_a_waiting_case_returns(machine: CaseMachine) -> None:
    case = case_in("awaiting_information", "triaged")
    assert machine.fire(case, "record_consent") == "awaiting_information"
    assert case.return_state == "triaged"


def test_mermaid_draws_exactly_the_contracts_edges() -> None:
    import re

    diagram = CaseMachine.mermaid()
    drawn = {(a, t, b) for a, b, t in re.findall(r"^\s*(\w+) --> (\w+): (\w+)", diagram, re.MULTILINE)}
    assert drawn == set(CONTRACT_EDGES)


# --- property: random trigger sequences ------------------------------------------------------------

TRIGGER_NAMES = st.sampled_from(CONTRACT_TRIGGERS + ("to_closed", "trigger", "may_close", "remember_return_state"))


def expected_step(state: str, return_state: str | None, trigger: str) -> tuple[str, str | None] | None:
    """The contract's answer for one step: (new state, new return_state), or None when refused."""
    if trigger not in CONTRACT_TABLE or state not in CONTRACT_TABLE[trigger][0]:
        return None
    dest = CONTRACT_TABLE[trigger][1]
    if trigger == "provide_information":
        return (return_state, None) if return_state in INTERRUPTIBLE else None
    if dest == UNCHANGED:
        return state, return_state
    if dest == "awaiting_information":
        return dest, state
    return dest, None


class CaseWorkflow(RuleBasedStateMachine):
    """Random trigger sequences on a few cases through one shared machine, checked step by step."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = CaseMachine()
        self.cases = [CaseState() for _ in range(3)]

    @rule(index=st.integers(0, 2), trigger=TRIGGER_NAMES)
    def fire(self, index: int, trigger: str) -> None:
        case = self.cases[index]
        before = (case.state, case.return_state)
        expected = expected_step(*before, trigger)
        try:
            self.machine.require(case, trigger)
            required = True
        except TransitionNotAllowed:
            required = False
        assert (case.state, case.return_state) == before  # require never moves a case
        try:
            result = self.machine.fire(case, trigger)
        except TransitionNotAllowed:
            assert expected is None, f"{trigger} from {before} should be accepted"
            assert not required
            assert (case.state, case.return_state) == before  # refused steps change nothing
        else:
            assert expected is not None, f"{trigger} from {before} should be refused"
            assert required
            assert result == case.state
            assert (before[0], trigger, case.state) in CONTRACT_EDGES | CONTRACT_LOOPS
            assert (case.state, case.return_state) == expected

    @precondition(lambda self: any(c.state == "closed" for c in self.cases))
    @rule(index=st.integers(0, 2))
    def reopen_as_a_new_case(self, index: int) -> None:
        self.cases[index] = CaseState()

    @invariant()
    def states_are_the_contracts(self) -> None:
        for case in self.cases:
            assert case.state in CONTRACT_STATES

    @invariant()
    def return_state_is_set_exactly_while_awaiting_information(self) -> None:
        for case in self.cases:
            if case.state == "awaiting_information":
                assert case.return_state in INTERRUPTIBLE
            else:
                assert case.return_state is None

    @invariant()
    def the_shared_machine_holds_no_case(self) -> None:
        assert list(self.machine._machine.models) == []


CaseWorkflow.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_random_trigger_sequences_follow_the_contract = CaseWorkflow.TestCase
