"""The command table (workflows/commands.py): the machine, the flow, the routing and the events follow from it.

A table with one extra, test-only command shows what adding a command takes: its model, its domain
function and its entry, and nothing else, for the machine, the flow and the routing to take it.
"""
from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

import pytest

from earlyhelp.schemas import COMMAND_MODELS, EVENT_MODELS, MessageRefused, parse_command
from earlyhelp.schemas.commands import Command
from earlyhelp.schemas.events import public_code
from earlyhelp.workflows import case_machine
from earlyhelp.workflows.case_flow import CaseFlow, Outcome
from earlyhelp.workflows.case_machine import CaseMachine, TransitionNotAllowed
from earlyhelp.workflows.commands import COMMANDS, ENGINE_EVENTS, CommandSpec, command_models, command_table
from earlyhelp.workflows.sla_policy import STATE_EVENTS
from earlyhelp.workflows.states import CLOSED, OPEN_STATES, RECEIVED, RETURN_STATE, STATES, UNCHANGED

from tests.factories import ACTOR, NOW, command, encode, notification


# --- the engine's table ----------------------------------------------------------------------------

def test_every_command_model_has_exactly_one_entry_and_the_entry_names_its_model() -> None:
    assert list(COMMANDS) == list(COMMAND_MODELS)
    assert all(spec.model is COMMAND_MODELS[name] and spec.name == name for name, spec in COMMANDS.items())


def test_each_entry_names_known_states_and_a_destination() -> None:
    for name, spec in COMMANDS.items():
        assert spec.allowed_from and set(spec.allowed_from) <= set(STATES), name
        assert spec.goes_to in (*STATES, UNCHANGED, RETURN_STATE), name


def test_the_machine_is_drawn_from_the_table() -> None:
    assert case_machine.TRIGGERS == tuple(COMMANDS)
    for state in STATES:
        assert CaseMachine.allowed_triggers(state) == [n for n, s in COMMANDS.items() if state in s.allowed_from]


def test_every_transitions_event_has_an_event_model() -> None:
    for transition in case_machine.TRANSITIONS:
        for event in COMMANDS[transition["trigger"]].events:
            assert event in EVENT_MODELS, f"{transition['trigger']} records {event}, which has no event model"


def test_every_case_event_is_recorded_by_a_command_or_the_engine_itself() -> None:
    recorded = {e for spec in COMMANDS.values() for e in spec.events if e.startswith("case.")} | set(ENGINE_EVENTS)
    case_events = {e for e in EVENT_MODELS if e.startswith("case.")}
    assert case_events == recorded, f"never recorded: {case_events - recorded}; no model: {recorded - case_events}"


def test_the_sla_policy_names_only_events_the_table_records() -> None:
    recorded = {event for spec in COMMANDS.values() for event in spec.events} | set(ENGINE_EVENTS)
    assert set(STATE_EVENTS) <= recorded


def test_a_command_the_table_does_not_hold_is_refused_as_invalid_not_a_fault() -> None:
    without_triage = command_table(*(s for n, s in COMMANDS.items() if n != "triage"))
    flow = CaseFlow(commands=without_triage)
    case, _ = flow.open("case-1", notification())
    with pytest.raises(MessageRefused) as refused:
        flow.apply(case, command("triage", "case-1"), None)
    assert public_code(refused.value.code) == "invalid"
    assert case.state == "checked" and case.version == 2  # nothing changed
    with pytest.raises(MessageRefused) as unrouted:  # and the routing does not take it either
        parse_command(encode({}), "case.triage", now=NOW, models=command_models(without_triage))
    assert unrouted.value.code == "unknown_command"


def test_a_command_declared_twice_is_a_mistake_in_the_table() -> None:
    with pytest.raises(ValueError):
        command_table(COMMANDS["check"], COMMANDS["check"])


# --- adding a command: a test-only `reopen` ----------------------------------------------------------

class ReopenCommand(Command):
    """reopen (from closed): the case is looked at again -> received. Test-only: not part of the contract."""

    name: ClassVar[str] = "reopen"
    reason: Literal["new_information"]


def reopen(flow: CaseFlow, case, command, notification) -> Outcome:
    case.requested_paths = None
    return Outcome([flow.move(case, command, {"reason": command.reason})], notification)


WITH_REOPEN = command_table(*COMMANDS.values(),
                            CommandSpec(ReopenCommand, (CLOSED,), RECEIVED, "case.reopened", False, reopen))


def reopen_command(case_id: str, issued_at) -> ReopenCommand:
    body = {"schema_version": 1, "command_id": "reopen-1", "case_id": case_id, "actor": dict(ACTOR),
            "issued_at": issued_at.isoformat(), "reason": "new_information"}
    return parse_command(encode(body), "case.reopen", now=issued_at + timedelta(minutes=1),
                         models=command_models(WITH_REOPEN))


def test_an_added_command_is_a_model_a_function_and_an_entry_the_machine_takes() -> None:
    machine = CaseMachine(WITH_REOPEN)
    case = case_machine.CaseState(state=CLOSED)
    machine.require(case, "reopen")
    assert machine.fire(case, "reopen") == RECEIVED
    for state in OPEN_STATES:
        with pytest.raises(TransitionNotAllowed):
            machine.require(case_machine.CaseState(state=state), "reopen")
    assert "closed --> received: reopen" in CaseMachine.mermaid(WITH_REOPEN)
    assert "reopen" not in CaseMachine.mermaid()  # the engine's own table is untouched


def test_an_added_command_is_routed_and_applied_by_the_flow() -> None:
    flow = CaseFlow(commands=WITH_REOPEN)
    n = notification()
    case, _ = flow.open("case-1", n)
    closed = flow.apply(case, command("close", "case-1"), n)
    later = closed.changes[0].occurred_at + timedelta(hours=1)

    outcome = flow.apply(case, reopen_command("case-1", later), n)

    [change] = outcome.changes
    assert (change.event_type, change.previous_state, change.state) == ("case.reopened", "closed", "received")
    assert change.data == {"reason": "new_information"} and change.sequence == case.version
    assert case.state == RECEIVED
    with pytest.raises(MessageRefused) as refused:  # the engine's own flow refuses it cleanly
        CaseFlow().apply(case, reopen_command("case-1", later), n)
    assert public_code(refused.value.code) == "invalid"
