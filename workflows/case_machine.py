"""The case state machine: one shared `transitions` Machine for every case in the process, drawn from the
command table (workflows/commands.py).

Building a Machine per case costs ~0.4 ms, add_model/remove_model on a shared one ~0.06 ms
(docs/engineering.md); triggering the shared Machine's event with the case as its model costs less still,
so the engine keeps exactly one Machine per process and never binds methods onto cases.

Each command's entry says where it is allowed from and where it goes; the machine adds its own rules about
a request for information: going to awaiting_information remembers the state it interrupted, a command
that goes back (provide_information) returns to it, and leaving for closed forgets it.
"""
from __future__ import annotations

from transitions import Machine, MachineError

from .commands import COMMANDS, CommandSpec
from .states import (  # noqa: F401 - the states are named from here too
    ALLOCATED, ASSESSED, AWAITING_INFORMATION, CHECKED, CLOSED, INTERRUPTIBLE, OPEN_STATES, RECEIVED,
    RETURN_STATE, STATES, STEPPED_DOWN, TRIAGED, UNCHANGED, CaseState,
)


def transitions_of(commands: dict[str, CommandSpec]) -> list[dict]:
    """The `transitions` definitions that follow from a command table, in its order."""
    found: list[dict] = []
    for name, spec in commands.items():
        sources = list(spec.allowed_from)
        if spec.goes_to == RETURN_STATE:
            found += [{"trigger": name, "source": sources, "dest": state, "conditions": f"returns_to_{state}",
                       "after": "forget_return_state"} for state in INTERRUPTIBLE]
            continue
        # dest None: an internal transition, the state and return_state stay as they are (record_consent).
        transition = {"trigger": name, "source": sources[0] if len(sources) == 1 else sources, "dest": spec.goes_to}
        if spec.goes_to == AWAITING_INFORMATION:
            transition["before"] = "remember_return_state"
        elif spec.goes_to == CLOSED:
            transition["after"] = "forget_return_state"
        found.append(transition)
    return found


TRANSITIONS = transitions_of(COMMANDS)
TRIGGERS = tuple(COMMANDS)


class TransitionNotAllowed(Exception):
    """The case's current state does not allow this trigger: a normal outcome, not bad input."""

    def __init__(self, trigger: str, state: str):
        self.trigger, self.state = trigger, state
        super().__init__(f"a case in state '{state}' cannot take '{trigger}'")
        # What the rejection event says: one sentence, one error line.
        self.reason = f"a case in state '{state}' cannot take '{trigger}'; the command was not applied"
        self.error = f"state: '{trigger}' is not allowed from '{state}'"


class ClockNotRunning(TransitionNotAllowed):
    """extend_clock for a stage whose clock is not running (never started, or stopped): refused like a state
    that does not allow the command (not_allowed_in_state), nothing changed."""

    def __init__(self, trigger: str, state: str, stage: str, why: str):
        super().__init__(trigger, state)
        self.stage = stage
        self.reason = (f"the case's {stage} clock {why}: only a running stage's clock can be extended; "
                       "the command was not applied")
        self.error = f"stage: the {stage} clock is not running"


class CaseMachine:
    """The one shared Machine (of the engine's table, or of the table given). Not thread-safe: one per engine thread."""

    def __init__(self, commands: dict[str, CommandSpec] | None = None) -> None:
        self.commands = COMMANDS if commands is None else commands
        self._sources = _sources(self.commands)
        self._machine = Machine(
            model=None, states=list(STATES), transitions=transitions_of(self.commands), initial=RECEIVED,
            auto_transitions=False, ignore_invalid_triggers=False, model_attribute="state",
        )

    def fire(self, case: CaseState, trigger: str) -> str:
        """Move `case` by `trigger` and return its new state, or raise TransitionNotAllowed.

        The shared Machine's event is triggered with the case as its model directly. add_model and
        remove_model would bind ~26 methods onto every case and leave them behind (transitions then
        warns on the next add), for nothing: the flow never calls the bound methods.
        """
        event = self._machine.events.get(trigger)
        if event is None:
            raise TransitionNotAllowed(trigger, case.state)
        before = case.state
        try:
            moved = event.trigger(case)
        except MachineError:
            moved = False
        if not moved:
            case.state = before
            raise TransitionNotAllowed(trigger, before)
        return case.state

    def require(self, case: CaseState, trigger: str) -> None:
        """Raise TransitionNotAllowed unless `trigger` can fire now; lets a flow refuse before changing facts."""
        if case.state not in self._sources.get(trigger, ()):
            raise TransitionNotAllowed(trigger, case.state)
        if self.commands[trigger].goes_to == RETURN_STATE and case.return_state not in INTERRUPTIBLE:
            raise TransitionNotAllowed(trigger, case.state)

    @staticmethod
    def allowed_triggers(state: str, commands: dict[str, CommandSpec] | None = None) -> list[str]:
        return [name for name, spec in (COMMANDS if commands is None else commands).items()
                if state in spec.allowed_from]

    @staticmethod
    def mermaid(commands: dict[str, CommandSpec] | None = None) -> str:
        """The workflow as a Mermaid diagram drawn by `transitions` from this same definition (README)."""
        from transitions.extensions.diagrams import GraphMachine

        # State-unchanged commands (record_consent) are not moves between states: the diagram leaves them out.
        moves = [t for t in transitions_of(COMMANDS if commands is None else commands) if t["dest"] is not UNCHANGED]
        graph = GraphMachine(model=None, states=list(STATES), transitions=moves, initial=RECEIVED,
                             auto_transitions=False, graph_engine="mermaid", title="The case workflow",
                             show_conditions=True)
        model = CaseState()
        graph.add_model(model)
        return model.get_graph().draw(None)


def _sources(commands: dict[str, CommandSpec]) -> dict[str, frozenset[str]]:
    return {name: frozenset(spec.allowed_from) for name, spec in commands.items()}
