"""The pure parts of a child's record (issue 13): identifier normal forms and hashes, the pseudonym key's
file, the retention rule with "now" passed in, the policy file's errors, disclosure field paths, what
names a case in a stored body, and the subject-access chronology being self-contained."""
from __future__ import annotations

import os
import stat
from datetime import date, datetime, timezone

import pytest

from earlyhelp.records import pseudonyms
from earlyhelp.records.access_log import NoReason, cases_named_in, checked_reason
from earlyhelp.records.disclosures import disclosure_row, field_paths
from earlyhelp.records.erasure import MatchTerms
from earlyhelp.records.retention import (
    RetentionError, RetentionPolicy, is_past, keep_until, load_policy, parse_policy,
)
from earlyhelp.records.subject_access import BadIdentifier, search_digest, to_html
from tests.factories import EXAMPLE_NOTIFICATION

KEY = bytes.fromhex("11" * 32)
UTC = timezone.utc
NHS = "9434765919"   # a valid NHS number (mod 11)


def valid_upn() -> str:
    from earlyhelp.schemas.identifiers import upn_check_letter

    body = "801200300001"
    return upn_check_letter(body) + body


def child(**fields) -> dict:
    return {"child": {**EXAMPLE_NOTIFICATION["child"], **fields}}


# -- identifiers ------------------------------------------------------------------------------------------
def test_the_name_and_date_hash_ignores_spacing_case_and_where_the_name_splits():
    one = pseudonyms.child_digests(KEY, child(given_name="  Mary Ann ", family_name="SMITH", date_of_birth="2015-05-02"))
    two = pseudonyms.child_digests(KEY, child(given_name="mary", family_name="ann   smith", date_of_birth="2015-05-02"))
    assert one["name_dob"] == two["name_dob"]
    kind, typed = search_digest(KEY, name="Mary  Ann Smith", dob="2015-05-02")
    assert (kind, typed) == ("name_dob", one["name_dob"])
    other_day = pseudonyms.child_digests(KEY, child(given_name="Mary Ann", family_name="Smith", date_of_birth="2015-05-03"))
    assert other_day["name_dob"] != one["name_dob"]


def test_an_unborn_child_is_found_by_the_expected_date():
    found = pseudonyms.child_digests(KEY, child(date_of_birth=None, expected_date_of_birth="2027-02-01"))
    assert found["name_dob"] == search_digest(KEY, name="Sam Taylor", dob="2027-02-01")[1]


def test_each_identifier_hashes_under_its_own_label_and_key():
    upn = valid_upn()
    found = pseudonyms.child_digests(KEY, child(nhs_number=NHS, upn=upn))
    assert set(found) == {"nhs_number", "upn", "name_dob"}
    assert found["nhs_number"] == search_digest(KEY, nhs_number="943 476 5919")[1]
    assert found["upn"] == search_digest(KEY, upn=upn.lower())[1]
    assert pseudonyms.digest(KEY, "nhs_number", NHS) != pseudonyms.digest(KEY, "upn", NHS)
    assert pseudonyms.digest(bytes(32), "nhs_number", NHS) != found["nhs_number"]
    assert all(len(v) == 64 and NHS not in v for v in found.values())
    assert pseudonyms.identifier_rows(KEY, "c1", {"child": {}}) == []


@pytest.mark.parametrize("asked, words", [
    ({"nhs_number": "9434765918"}, "--nhs-number: NHS number check digit does not match"),
    ({"nhs_number": "94347"}, "--nhs-number: NHS number must be exactly 10 digits"),
    ({"upn": "A80120030000"}, "--upn: UPN must be 13 characters"),
    ({"name": "Sam Taylor", "dob": "2015-02-30"}, "--dob: not a date"),
    ({"name": "Sam", "dob": "2015-05-02"}, "--name: give the given name and the family name"),
])
def test_a_malformed_identifier_is_named_and_never_repeated(asked, words):
    with pytest.raises(BadIdentifier) as caught:
        search_digest(KEY, **asked)
    assert str(caught.value).startswith(words)
    assert all(str(v) not in str(caught.value) for v in asked.values() if v not in ("Sam",))


def test_the_key_comes_from_the_variable_or_a_file_made_once_beside_the_sqlite_file(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'earlyhelp.sqlite'}"
    monkeypatch.delenv(pseudonyms.KEY_VARIABLE, raising=False)
    key = pseudonyms.pseudonym_key(url)
    path = tmp_path / "earlyhelp.sqlite.pseudonym-key"
    assert path.read_text().strip() == key.hex() and len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert str(path) in capsys.readouterr().err
    pseudonyms._cache.clear()
    assert pseudonyms.pseudonym_key(url) == key  # read back, not made again
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(pseudonyms.KEY_VARIABLE, "ab" * 32)
    assert pseudonyms.pseudonym_key(url) == bytes.fromhex("ab" * 32)
    monkeypatch.setenv(pseudonyms.KEY_VARIABLE, "not hex")
    with pytest.raises(pseudonyms.KeyProblem, match="EARLYHELP_PSEUDONYM_KEY: the pseudonym key must be 64 hex digits"):
        pseudonyms.pseudonym_key(url)


def test_serve_says_where_the_key_is_once(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'earlyhelp.sqlite'}"
    monkeypatch.delenv(pseudonyms.KEY_VARIABLE, raising=False)
    pseudonyms.announce_key_source(url)
    assert "made a new pseudonym key in" in capsys.readouterr().err
    pseudonyms._cache.clear()
    pseudonyms.announce_key_source(url)
    said = capsys.readouterr().err
    assert "using the pseudonym key in" in said and said.count("\n") == 1
    (tmp_path / "earlyhelp.sqlite.pseudonym-key").write_text("short\n")
    pseudonyms._cache.clear()
    with pytest.raises(pseudonyms.KeyProblem, match="pseudonym-key: the pseudonym key must be 64 hex digits"):
        pseudonyms.announce_key_source(url)


def test_postgresql_keeps_its_key_in_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert pseudonyms.key_file_for("postgresql+psycopg://u@h/db") == tmp_path / "earlyhelp" / "pseudonym-key"


# -- retention --------------------------------------------------------------------------------------------
RECEIVED = datetime(2026, 11, 20, 9, 14, tzinfo=UTC)


def test_the_shipped_policy_keeps_until_the_25th_birthday_or_25_years_after_received():
    policy = load_policy(None) if not os.environ.get("EARLYHELP_RETENTION") else RetentionPolicy()
    assert (policy.until_age, policy.years_after_received_without_birth_date) == (25, 25)
    assert keep_until(policy, date(2015, 5, 2), RECEIVED) == date(2040, 5, 2)
    assert not is_past(policy, date(2015, 5, 2), RECEIVED, datetime(2040, 5, 1, 23, 59, tzinfo=UTC))
    assert is_past(policy, date(2015, 5, 2), RECEIVED, datetime(2040, 5, 2, 0, 0, tzinfo=UTC))
    assert keep_until(policy, None, RECEIVED) == date(2051, 11, 20)
    assert keep_until(policy, date(2008, 2, 29), RECEIVED) == date(2033, 3, 1)


def test_a_policy_file_with_errors_is_named_with_its_key(tmp_path):
    good = parse_policy("[retention]\nuntil_age = 18\nyears_after_received_without_birth_date = 7\n", "p.toml")
    assert (good.until_age, good.years_after_received_without_birth_date) == (18, 7)
    for text, words in [
        ("[retention]\nuntil_age = 'x'\nyears_after_received_without_birth_date = 7\n", "p.toml: retention.until_age:"),
        ("[retention]\nuntil_age = 25\n", "p.toml: retention.years_after_received_without_birth_date: missing"),
        ("[retention]\nuntil_age = 25\nyears = 1\nyears_after_received_without_birth_date = 7\n",
         "p.toml: retention.years: unknown key"),
        ("[retention\n", "p.toml: not valid TOML"),
        ("until_age = 25\n", "p.toml: until_age: unknown table"),
    ]:
        with pytest.raises(RetentionError) as caught:
            parse_policy(text, "p.toml")
        assert str(caught.value).startswith(words), str(caught.value)
        assert "\n" not in str(caught.value)
    with pytest.raises(RetentionError, match="cannot be read"):
        load_policy(tmp_path / "absent.toml")


# -- disclosures ------------------------------------------------------------------------------------------
def test_disclosures_name_field_paths_never_values():
    data = {"team": "Unit 2", "worker_id": "w-1", "child": {"given_name": "Sam", "family_name": "Taylor",
            "nhs_number": NHS}, "notifier": {"source": "school", "contact_email": "dsl@oakwood.example"}}
    assert field_paths(data) == ["data.child.family_name", "data.child.given_name", "data.child.nhs_number",
                                 "data.notifier.contact_email", "data.notifier.source"]
    at = datetime(2026, 11, 25, 12, tzinfo=UTC)
    row = disclosure_row({"event_id": "e1", "case_id": "c1", "event_type": "case.allocated", "data": data},
                         "earlyhelp.events", "case.allocated.maidstone", at)
    assert row["basis"] == "public_task" and "Sam" not in repr(row) and NHS not in repr(row)
    school = disclosure_row({"event_id": "e2", "case_id": "c1", "event_type": "school.closed",
                             "data": {"school_urn": "118923", "child": {"given_name": "Sam", "family_name": "T"}}},
                            "earlyhelp.events", "school.118923.closed", at)
    assert school["basis"] == "consent" and school["field_paths"] == ["data.child.family_name", "data.child.given_name"]
    assert disclosure_row({"event_id": "e3", "case_id": "c1", "event_type": "case.closed", "data": {}},
                          "earlyhelp.events", "case.closed.maidstone", at) is None


# -- what names a case ----------------------------------------------------------------------------------
def test_a_stored_body_names_the_case_by_id_notification_identifier_or_name_and_date():
    terms = MatchTerms.of("case-1", "school", "oakwood-1", child(nhs_number=NHS))
    assert terms.named_by(b'{"case_id": "case-1", "command_id": "x"}')
    assert terms.named_by(b'{"notification_id": "oakwood-1", "referrer": {"source": "school"}}')
    assert not terms.named_by(b'{"notification_id": "oakwood-1", "referrer": {"source": "health"}}')
    assert terms.named_by(b'not json but ' + NHS.encode())
    assert terms.named_by(b'{"child": {"given_name": " sam ", "family_name": "TAYLOR", "date_of_birth": "2015-05-02"}}')
    assert not terms.named_by(b'{"child": {"given_name": "Sam", "family_name": "Taylor", "date_of_birth": "2016-05-02"}}')
    assert not terms.named_by(b"\xff\xfe")
    terms.add("health", "gp-77", {"child": {"given_name": "Sam", "family_name": "Taylor", "date_of_birth": "2015-05-02",
                                            "upn": "X123"}})
    assert terms.named_by(b'{"notification_id": "gp-77", "referrer": {"source": "health"}}')
    assert terms.named_by(b'{"upn": "X123"}')
    assert cases_named_in(b'{"case_id": "case-1"}') == ["case-1"]
    assert cases_named_in(b"[1]") == [] and cases_named_in(b"{") == []


def test_a_view_of_personal_data_needs_a_reason():
    assert checked_reason("  SAR-2026-14 ", "case") == "SAR-2026-14"
    with pytest.raises(NoReason, match="give --reason"):
        checked_reason("  ", "case --show-personal")


def test_the_chronology_is_self_contained_and_escapes_what_it_prints():
    at = datetime(2026, 11, 25, 12, tzinfo=UTC)
    document = {"request": {"by": "officer", "reason": "SAR <1>", "at": at}, "cases": [{
        "case_id": "c1", "notification": {"child": {"given_name": "<script>alert(1)</script>"}},
        "linked_notifications": [],
        "history": [{"sequence": 1, "event_type": "case.received", "from_state": None, "to_state": "received",
                     "occurred_at": at, "recorded_at": at, "actor_id": None, "actor_role": None, "data": {}}],
        "disclosures": [{"disclosed_at": at, "routing_key": "school.118923.allocated",
                         "field_paths": ["data.child.given_name"], "basis": "consent", "event_type": "school.allocated",
                         "exchange": "earlyhelp.events", "event_id": "e"}],
        "clocks": [{"stage": "triage", "started": at, "paused": [], "deadline": at, "warning": at, "state": "met"}]}]}
    page = to_html(document)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page and "@import" not in page
    assert "school.118923.allocated" in page and "SAR &lt;1&gt;" in page
