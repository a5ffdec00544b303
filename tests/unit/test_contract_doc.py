"""docs/contract.md agrees with the code: its generated tables are current, and its prose tables name
exactly the sources, commands and events the models define."""
from __future__ import annotations

import re

from earlyhelp.schemas import COMMAND_MODELS, EVENT_MODELS, contract_doc
from earlyhelp.schemas.notification import SOURCES

PAGE = contract_doc.CONTRACT_PAGE.read_text(encoding="utf-8")
PROSE = PAGE.split(contract_doc.START)[0]
# In the contract's version 1.1 and not built yet (issue 14): listed so that building it updates this test.
CONTRACT_COMMANDS_NOT_YET_BUILT: set[str] = set()


def test_the_generated_tables_match_the_code():
    assert not contract_doc.drifted(), "run `earlyhelp schemas` to rewrite docs/contract.md's generated tables"


def test_the_prose_names_every_command_and_no_other():
    # The rows of the "Commands" and "Commands added" tables: | `name` | from state | ...
    written = set(re.findall(r"^\| `([a-z_]+)` \|", PROSE, flags=re.MULTILINE)) - {"command"}
    assert written - CONTRACT_COMMANDS_NOT_YET_BUILT == set(COMMAND_MODELS)
    assert not CONTRACT_COMMANDS_NOT_YET_BUILT & set(COMMAND_MODELS), "built now: take it off the list"


def test_the_prose_names_every_source():
    bullet = next(line for line in PROSE.splitlines() if line.startswith("- `referrer.source`"))
    for continuation in PROSE.split(bullet, 1)[1].splitlines()[1:]:
        if not continuation.startswith("  "):
            break
        bullet += continuation
    assert set(re.findall(r"`([a-z_]+)`", bullet)) - {"referrer", "source"} == set(SOURCES)


def test_every_event_model_has_its_routing_key_in_the_prose():
    keys = set(re.findall(r"`((?:case|sla|school|notification|command|referrer)\.[a-z_.<>]+)`", PROSE))
    for event_type in EVENT_MODELS:
        stage_free = re.sub(r"\.(triage|allocation|assessment)$", ".<stage>", event_type)
        expected = {f"{event_type}.<district>", f"{stage_free}.<district>", event_type,
                    f"school.<urn>.{event_type.removeprefix('school.')}"}
        if event_type.startswith("referrer."):  # the prose names the pattern once, and each event's word
            expected = {"referrer.<source>.<event>"} if f"`{event_type.removeprefix('referrer.')}`" in PROSE else set()
        assert expected & keys, f"{event_type} has no routing key in docs/contract.md"


def test_the_section_is_rewritten_in_place():
    page = "# Contract\n\nprose\n"
    once = contract_doc.render(page)
    assert once.startswith(page.rstrip("\n")) and contract_doc.END in once
    assert contract_doc.render(once) == once
