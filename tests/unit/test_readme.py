"""The README shows what the code does: its workflow diagram is the one the state machine draws."""
from pathlib import Path

from earlyhelp.workflows.case_machine import CaseMachine

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_diagram_is_drawn_from_the_state_machine():
    assert CaseMachine.mermaid().strip() in README.read_text(), "run `earlyhelp diagram` and paste it into README.md"
