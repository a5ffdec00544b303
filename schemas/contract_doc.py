"""The tables of docs/contract.md that follow from the code, written between markers in that page.

docs/contract.md is the public contract as subscribers and upstream developers read it: the prose is
written by people, and its reference tables (sources, commands with their fields and the states that allow
them, events with their routing keys) are generated here from the models and the command table (workflows/commands.py), so the
page cannot drift from what the engine accepts and publishes. `earlyhelp schemas` rewrites them;
`earlyhelp schemas --check` and tests/unit/test_contract_doc.py fail when they differ.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from .events import EVENT_MODELS
from .notification import SOURCES
from .routing import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, NOTIFICATIONS_EXCHANGE

CONTRACT_PAGE = Path(__file__).resolve().parent.parent / "docs" / "contract.md"
START = "<!-- generated from the code: start (earlyhelp schemas rewrites this part) -->"
END = "<!-- generated from the code: end -->"
# Fields every command carries (the contract's "Commands" paragraph); the tables list each one's own.
COMMON_COMMAND_FIELDS = ("schema_version", "command_id", "case_id", "actor", "issued_at")
_PERSONAL_EVENTS = ("case.allocated", "school.allocated", "school.stepped_down", "school.closed")


def _own_fields(model: type[BaseModel]) -> str:
    parts = [f"`{name}`" + ("" if field.is_required() else " (optional)")
             for name, field in model.model_fields.items() if name not in COMMON_COMMAND_FIELDS]
    return ", ".join(parts) or "—"


def _states(states) -> str:
    return ", ".join(states)


def commands_table() -> list[str]:
    # Imported here: the command table is the domain's, and the domain imports the schemas.
    from earlyhelp.workflows.commands import COMMANDS
    from earlyhelp.workflows.states import INTERRUPTIBLE, RETURN_STATE, STATES, UNCHANGED

    lines = ["| command (routing key) | allowed from | its own fields | to state |", "| --- | --- | --- | --- |"]
    for name, spec in COMMANDS.items():
        to = ("unchanged" if spec.goes_to is UNCHANGED
              else f"{RETURN_STATE}: " + " or ".join(INTERRUPTIBLE) if spec.goes_to == RETURN_STATE
              else spec.goes_to)
        allowed = [s for s in STATES if s in spec.allowed_from]
        lines.append(f"| `{name}` (`case.{name}`) | {_states(allowed)} | {_own_fields(spec.model)} | {to} |")
    return lines


def events_table() -> list[str]:
    from .routing import event_routing_key

    lines = ["| event_type | routing key | personal data |", "| --- | --- | --- |"]
    for event_type in EVENT_MODELS:
        key = event_routing_key(event_type, district="DISTRICT", school_urn="000000", source="SOURCE")
        if key != event_type:  # the variable segments, as the contract writes them
            key = key.replace("school.000000.", "school.<urn>.").replace("referrer.SOURCE.", "referrer.<source>.").removesuffix(".district") + (
                ".<district>" if key.endswith(".district") else "")
        personal = "yes (see above)" if event_type in _PERSONAL_EVENTS else "no"
        lines.append(f"| `{event_type}` | `{key}` | {personal} |")
    return lines


def generated_section() -> str:
    lines = [
        START,
        "",
        "## Reference tables, generated from the code",
        "",
        "Written by `earlyhelp schemas` from the message models (`schemas/`) and the command table "
        "(`workflows/commands.py`) the state machine is drawn from; a test fails when they differ from the code. "
        "The JSON Schema of each message and the AsyncAPI document are in `schemas/generated/`.",
        "",
        f"Notifications: exchange `{NOTIFICATIONS_EXCHANGE}`, routing key `notification.<source>`, where "
        "`<source>` is one of " + ", ".join(f"`{s}`" for s in SOURCES) + ".",
        "",
        f"Commands: exchange `{COMMANDS_EXCHANGE}`. Every command also carries "
        + ", ".join(f"`{f}`" for f in COMMON_COMMAND_FIELDS) + ".",
        "",
        *commands_table(),
        "",
        f"Events: exchange `{EVENTS_EXCHANGE}`.",
        "",
        *events_table(),
        "",
        END,
    ]
    return "\n".join(lines)


def render(page: str) -> str:
    """`page` with its generated section replaced (or appended when it has none yet)."""
    section = generated_section()
    if START in page and END in page:
        before, rest = page.split(START, 1)
        after = rest.split(END, 1)[1]
        return before + section + after
    return page.rstrip("\n") + "\n\n" + section + "\n"


def drifted(path: Path = CONTRACT_PAGE) -> bool:
    page = path.read_text(encoding="utf-8")
    return render(page) != page


def write(path: Path = CONTRACT_PAGE) -> Path:
    page = path.read_text(encoding="utf-8")
    path.write_text(render(page), encoding="utf-8")
    return path
