"""The senders policy (EARLYHELP_SENDERS): the contract's example file, each refusal, and a bad file named."""
from __future__ import annotations

import pytest

from earlyhelp.workflows.senders import SenderRefused, SendersError, load_senders, senders_from_text

# docs/contract.md, "Senders and what each may do", as published.
CONTRACT_EXAMPLE = """
[senders.school-portal]          # a broker user name
notifications = ["school"]       # sources it may send (the routing key's and the body's)

[senders.triage-team]
commands = ["check", "request_information", "provide_information", "triage", "close", "record_consent"]
roles = ["triage", "manager"]    # actor roles it may claim
districts = ["*"]                # cases it may act on, by district; "*" all, including unassigned

[senders.unit-maidstone]
commands = ["allocate", "assess", "step_down", "close", "request_information", "provide_information",
            "record_consent", "extend_clock"]
roles = ["unit_worker", "manager"]
districts = ["Maidstone"]
"""


@pytest.fixture(scope="module")
def policy():
    return senders_from_text(CONTRACT_EXAMPLE, "senders.toml")


def refusal(call, *args) -> SenderRefused:
    with pytest.raises(SenderRefused) as caught:
        call(*args)
    return caught.value


def test_the_contracts_example_file_loads(policy):
    assert not policy.is_open
    assert set(policy.senders) == {"school-portal", "triage-team", "unit-maidstone"}
    assert policy.senders["triage-team"].districts is None  # "*"
    assert policy.senders["unit-maidstone"].districts == {"maidstone"}


def test_a_sender_may_send_what_its_entry_names(policy):
    policy.check_notification("school-portal", "school")
    policy.check_command("triage-team", "triage", "manager")
    policy.check_case("triage-team", None, "Dover")
    policy.check_command("unit-maidstone", "allocate", "unit_worker")
    policy.check_case("unit-maidstone", "Maidstone")
    policy.check_case("unit-maidstone", "maidstone")  # compared by slug


@pytest.mark.parametrize("user_id", [None, "", "health-referrals"])
def test_no_user_id_or_a_user_the_file_does_not_name_is_an_unknown_sender(policy, user_id):
    for call, args in ((policy.check_notification, (user_id, "school")),
                       (policy.check_command, (user_id, "triage", "manager")),
                       (policy.check_case, (user_id, "Dover"))):
        refused = refusal(call, *args)
        assert refused.code == "unknown_sender"
        assert refused.errors[0].startswith("user_id:")


@pytest.mark.parametrize(("call", "args", "error"), [
    ("check_notification", ("school-portal", "health"), "referrer.source"),
    ("check_notification", ("triage-team", "school"), "referrer.source"),
    ("check_command", ("school-portal", "triage", "manager"), "routing_key"),
    ("check_command", ("unit-maidstone", "triage", "manager"), "routing_key"),
    ("check_command", ("unit-maidstone", "allocate", "triage"), "actor.role"),
    ("check_case", ("unit-maidstone", "Dover"), "case_id"),
    ("check_case", ("unit-maidstone", None), "case_id"),  # unassigned is not Maidstone
    ("check_case", ("triage-team", None, "Dover"), None),  # "*": allowed, see below
], ids=["source", "no_sources", "no_commands", "command", "role", "district", "unassigned", "star"])
def test_what_the_entry_does_not_allow_is_not_permitted(policy, call, args, error):
    if error is None:
        getattr(policy, call)(*args)
        return
    refused = refusal(getattr(policy, call), *args)
    assert refused.code == "not_permitted"
    assert refused.errors[0].split(":")[0] == error


def test_triage_needs_both_the_cases_district_and_the_target():
    policy = senders_from_text('[senders.t]\ncommands = ["triage"]\nroles = ["triage"]\n'
                               'districts = ["unassigned", "Tonbridge and Malling"]\n', "s.toml")
    policy.check_case("t", None, "tonbridge-and-malling")
    assert refusal(policy.check_case, "t", None, "Dover").errors == ["district: not permitted for this sender"]
    assert refusal(policy.check_case, "t", "Dover", "Tonbridge and Malling").errors[0].startswith("case_id:")


def test_without_a_file_every_sender_may_do_everything():
    policy = load_senders(None)
    assert policy.is_open
    policy.check_notification(None, "police")
    policy.check_command(None, "allocate", "anything")
    policy.check_case("whoever", "Dover", "Thanet")


@pytest.mark.parametrize(("text", "named"), [
    ('[senders.a]\nnotifications = ["shcool"]', "senders.a.notifications: 'shcool'"),
    ('[senders.a]\ncommands = ["triage"]\nroles = ["triage"]\ndistricts = ["Maidstne"]', "senders.a.districts: 'Maidstne'"),
    ('[senders.a]\ncommands = ["reopen"]\nroles = ["x"]\ndistricts = ["*"]', "senders.a.commands: 'reopen'"),
    ('[senders.a]\ncommands = ["triage"]\ndistricts = ["*"]', "senders.a.roles: required"),
    ('[senders.a]\nsources = ["school"]', "senders.a.sources: unknown key"),
    ('[senders.a]\nroles = "manager"', "senders.a.roles: must be a list"),
    ('[sender.a]\nroles = []', "sender: unknown key"),
    ('senders = 3', "senders: give at least one"),
    ('[senders.a\n', "not valid TOML"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_key(text, named):
    with pytest.raises(SendersError) as caught:
        senders_from_text(text, "/etc/earlyhelp/senders.toml")
    assert "/etc/earlyhelp/senders.toml" in str(caught.value)
    assert named in str(caught.value)


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(SendersError, match="cannot read the senders file .*missing.toml"):
        load_senders(tmp_path / "missing.toml")
    path = tmp_path / "senders.toml"
    path.write_text(CONTRACT_EXAMPLE)
    assert not load_senders(path).is_open


def test_a_long_or_unprintable_user_name_is_not_echoed():
    policy = senders_from_text('[senders.a]\nnotifications = ["school"]', "s.toml")
    assert "\x1b" not in refusal(policy.check_notification, "evil\x1b[2J", "school").reason
