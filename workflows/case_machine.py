"""The case state machine: one shared `transitions` Machine for every case in the process.

Building a Machine per case costs ~0.4 ms, add_model/remove_model on a shared one ~0.06 ms
(docs/engineering.md); triggering the shared Machine's event with the case as its model costs less still,
so the engine keeps exactly one Machine per process and never binds methods onto cases.
"""
from __future__ import annotations

from dataclasses import dataclass

from transitions import Machine, MachineError

RECEIVED = "received"
CHECKED = "checked"
AWAITING_INFORMATION = "awaiting_information"
TRIAGED = "triaged"
ALLOCATED = "allocated"
ASSESSED = "assessed"
STEPPED_DOWN = "stepped_down"
CLOSED = "closed"

STATES = (RECEIVED, CHECKED, AWAITING_INFORMATION, TRIAGED, ALLOCATED, ASSESSED, STEPPED_DOWN, CLOSED)
OPEN_STATES = tuple(s for s in STATES if s != CLOSED)
# A request for information may interrupt only these; provide_information returns to the one it came from.
INTERRUPTIBLE = (RECEIVED, CHECKED, TRIAGED)

TRANSITIONS = [
    {"trigger": "check", "source": RECEIVED, "dest": CHECKED},
    {"trigger": "request_information", "source": list(INTERRUPTIBLE), "dest": AWAITING_INFORMATION,
     "before": "remember_return_state"},
    *[
        {"trigger": "provide_information", "source": AWAITING_INFORMATION, "dest": state,
         "conditions": f"returns_to_{state}", "after": "forget_return_state"}
        for state in INTERRUPTIBLE
    ],
    {"trigger": "triage", "source": CHECKED, "dest": TRIAGED},
    {"trigger": "allocate", "source": TRIAGED, "dest": ALLOCATED},
    {"trigger": "assess", "source": ALLOCATED, "dest": ASSESSED},
    {"trigger": "step_down", "source": ASSESSED, "dest": STEPPED_DOWN},
    {"trigger": "close", "source": list(OPEN_STATES), "dest": CLOSED, "after": "forget_return_state"},
    # Internal (dest None): allowed in any open state, the state and return_state stay as they are.
    {"trigger": "record_consent", "source": list(OPEN_STATES), "dest": None},
]
TRIGGERS = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))


class TransitionNotAllowed(Exception):
    """The case's current state does not allow this trigger: a normal outcome, not bad input."""

    def __init__(self, trigger: str, state: str):
        self.trigger, self.state = trigger, state
        super().__init__(f"a case in state '{state}' cannot take '{trigger}'")


@dataclass
class CaseState:
    """What the machine needs of a case: its state and, while awaiting information, where it came from."""

    state: str = RECEIVED
    return_state: str | None = None

    def remember_return_state(self) -> None:
        self.return_state = self.state

    def forget_return_state(self) -> None:
        self.return_state = None

    def returns_to_received(self) -> bool:
        return self.return_state == RECEIVED

    def returns_to_checked(self) -> bool:
        return self.return_state == CHECKED

    def returns_to_triaged(self) -> bool:
        return self.return_state == TRIAGED


class CaseMachine:
    """The one shared Machine. Not thread-safe: one per engine thread."""

    def __init__(self) -> None:
        self._machine = Machine(
            model=None, states=list(STATES), transitions=TRANSITIONS, initial=RECEIVED,
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
        if case.state not in _SOURCES.get(trigger, ()):
            raise TransitionNotAllowed(trigger, case.state)
        if trigger == "provide_information" and case.return_state not in INTERRUPTIBLE:
            raise TransitionNotAllowed(trigger, case.state)

    @staticmethod
    def allowed_triggers(state: str) -> list[str]:
        return [t for t in TRIGGERS if state in _SOURCES[t]]

    @staticmethod
    def mermaid() -> str:
        """The workflow as a Mermaid diagram drawn by `transitions` from this same definition (README)."""
        from transitions.extensions.diagrams import GraphMachine

        # State-unchanged commands (record_consent) are not moves between states: the diagram leaves them out.
        moves = [t for t in TRANSITIONS if t["dest"] is not None]
        graph = GraphMachine(model=None, states=list(STATES), transitions=moves, initial=RECEIVED,
                             auto_transitions=False, graph_engine="mermaid", title="The case workflow",
                             show_conditions=True)
        model = CaseState()
        graph.add_model(model)
        return model.get_graph().draw(None)


def listify(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


_SOURCES = {t: frozenset(s for tr in TRANSITIONS if tr["trigger"] == t for s in listify(tr["source"]))
            for t in TRIGGERS}
