"""The states a case can be in, and what the state machine keeps of a case (its state and return state).

Kept apart from the machine (workflows/case_machine.py) and the command table (workflows/commands.py) so
both, and the flow between them (workflows/case_flow.py), can name the states without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass

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

# What a command table entry says instead of a state: the case stays where it is (record_consent), or it
# goes back to the state it was in before the request for information (provide_information).
UNCHANGED = None
RETURN_STATE = "the state it came from"


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
