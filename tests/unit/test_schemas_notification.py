"""The notification parser: the contract's example, each refusal, and that refusals never echo personal data."""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from earlyhelp.schemas import MAX_BODY_BYTES, MessageRefused, Notification, parse_notification
from tests.factories import notification_body

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
KEY = "notification.school"
PERSONAL = ("Sam", "Taylor", "ME14 1AA", "2015-05-02", "J. Patel", "dsl@oakwood.example", "01622 000000")


def example() -> dict:
    """The contract's example notification (a fresh copy each time)."""
    return notification_body()


def encode(document: dict) -> bytes:
    return json.dumps(document).encode()


def refused(body: bytes, key: str = KEY, **kwargs) -> MessageRefused:
    with pytest.raises(MessageRefused) as caught:
        parse_notification(body, key, now=kwargs.pop("now", NOW), **kwargs)
    error = caught.value
    text = error.reason + "\n" + "\n".join(error.errors)
    for value in PERSONAL:
        assert value not in text, f"refusal echoes {value!r}"
    assert error.reason.endswith(".")
    return error


def with_child(**changes) -> dict:
    document = example()
    document["child"].update(changes)
    return document


def test_the_contracts_example_is_accepted():
    notification = parse_notification(encode(example()), KEY, now=NOW)
    assert isinstance(notification, Notification)
    assert notification.child.given_name == "Sam"
    assert notification.received_at == datetime(2026, 11, 20, 9, 14, tzinfo=timezone.utc)
    assert notification.consent.share_with_school is True


def test_optional_parts_may_be_left_out_and_blank_text_counts_as_absent():
    document = example()
    for name in ("priority", "support_already_offered", "intended_outcome", "consent"):
        del document[name]
    document["child_voice"] = "   "
    document["referrer"] = {"source": "school"}
    document["child"] = {"given_name": " Sam ", "family_name": "Taylor", "expected_date_of_birth": "2027-01-10"}
    notification = parse_notification(encode(document), KEY, now=NOW)
    assert notification.priority is False and notification.consent is None
    assert notification.child_voice is None
    assert notification.child.given_name == "Sam"


def test_missing_child_fields_are_accepted_with_social_care_status_at_the_top_level():
    document = example() | {"kind": "missing_child", "social_care_status": "never_known"}
    document["child"]["placing_authority"] = "Medway"
    notification = parse_notification(encode(document), KEY, now=NOW)
    assert notification.social_care_status == "never_known"
    assert notification.child.placing_authority == "Medway"


def test_invalid_fields_are_listed_by_path_without_values():
    document = with_child(date_of_birth="2015-13-45", nickname="Sammy")
    document["priority"] = "true"
    del document["reason"]
    error = refused(encode(document))
    assert error.code == "invalid_fields"
    assert error.ids == {"notification_id": "oakwood-2026-000457"}
    paths = {line.split(":")[0] for line in error.errors}
    assert paths == {"priority", "child.date_of_birth", "child.nickname", "reason"}
    assert "child.date_of_birth" in error.reason


@pytest.mark.parametrize("field", ["given_name", "family_name"])
def test_a_blank_required_name_is_refused(field):
    error = refused(encode(with_child(**{field: "  "})))
    assert error.errors[0].startswith(f"child.{field}:")


def test_no_coercion_of_json_types():
    document = example()
    document["notification_id"] = 457
    document["consent"]["family_consents"] = 1
    error = refused(encode(document))
    assert {line.split(":")[0] for line in error.errors} == {"notification_id", "consent.family_consents"}


def test_both_or_neither_date_of_birth_is_refused():
    both = refused(encode(with_child(expected_date_of_birth="2027-01-01")))
    assert both.errors == ["child: Give date_of_birth or expected_date_of_birth, not both"]
    neither = example()
    del neither["child"]["date_of_birth"]
    assert refused(encode(neither)).errors[0].startswith("child: Give date_of_birth")


def test_date_of_birth_in_the_future_is_refused():
    error = refused(encode(with_child(date_of_birth="2026-12-01")))
    assert error.errors == ["child.date_of_birth: Date is in the future"]


def test_received_at_more_than_five_minutes_ahead_is_refused_but_four_is_accepted():
    ahead = example() | {"received_at": (NOW + timedelta(minutes=6)).isoformat()}
    assert refused(encode(ahead)).errors[0].startswith("received_at: Time is in the future")
    close = example() | {"received_at": (NOW + timedelta(minutes=4)).isoformat()}
    assert parse_notification(encode(close), KEY, now=NOW).received_at == NOW + timedelta(minutes=4)


def test_a_time_without_a_time_zone_is_refused():
    error = refused(encode(example() | {"received_at": "2026-11-20T09:14:00"}))
    assert error.errors == ["received_at: Input should have timezone info"]


def test_a_time_with_no_utc_equivalent_is_refused_not_crashed():
    error = refused(encode(example() | {"received_at": "0001-01-01T00:00:00+05:00"}))
    assert error.errors[0].startswith("received_at:")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nhs_number", "9434765918", "child.nhs_number: NHS number check digit does not match"),
        ("nhs_number", "94347659", "child.nhs_number: NHS number must be exactly 10 digits"),
        ("upn", "A801200005001", "child.upn: UPN check letter does not match"),
        ("upn", "B80120000500", "child.upn: UPN must be 13 characters"),
        ("upn", "B8012000050I1", "child.upn: UPN must be a check letter then 12 digits, or 11 digits and a letter"),
        ("school_urn", "11892", "child.school_urn: school URN must be exactly 6 digits"),
    ],
)
def test_a_wrong_identifier_is_refused_with_what_is_wrong_but_not_the_value(field, value, message):
    error = refused(encode(with_child(**{field: value})))
    assert error.errors == [message]
    assert value not in error.reason + "".join(error.errors)


def test_valid_identifiers_are_accepted():
    document = with_child(nhs_number="9434765919", upn="B801200005001")
    document["referrer"]["referral_source_code"] = "2A"
    notification = parse_notification(encode(document), KEY, now=NOW)
    assert notification.child.nhs_number == "9434765919"


def test_unknown_enum_values_are_refused():
    document = example() | {"kind": "gossip"}
    document["referrer"]["referral_source_code"] = "2Z"
    error = refused(encode(document))
    assert {line.split(":")[0] for line in error.errors} == {"kind", "referrer.referral_source_code"}


# ---- routing key -----------------------------------------------------------------------------------


def test_a_routing_key_that_disagrees_with_the_source_is_refused_naming_both():
    error = refused(encode(example()), key="notification.health")
    assert error.code == "routing_key_mismatch"
    assert "health" in error.reason and "school" in error.reason
    assert error.ids == {"notification_id": "oakwood-2026-000457"}


@pytest.mark.parametrize("key", ["notification", "notifications.school", "notification.school.extra", "case.check", ""])
def test_a_malformed_routing_key_is_refused(key):
    assert refused(encode(example()), key=key).code == "routing_key"


# ---- hostile input -----------------------------------------------------------------------------------


def test_deep_nesting_is_refused_quickly_without_recursion_error():
    body = b"[" * 200_000 + b"]" * 200_000
    started = time.perf_counter()
    error = refused(body)
    assert error.code == "too_deep"
    assert time.perf_counter() - started < 1.0


def test_brackets_inside_strings_do_not_count_as_nesting():
    document = example() | {"reason": "[" * 100 + '{\\"' * 50}
    assert parse_notification(encode(document), KEY, now=NOW).reason.startswith("[[[")


def test_nesting_at_the_limit_reaches_model_validation():
    document = example() | {"reason": json.loads("[" * 31 + "]" * 31)}
    error = refused(encode(document))
    assert error.code == "invalid_fields"


def test_duplicate_keys_are_refused():
    body = encode(example())[:-1] + b', "reason": "second"}'
    error = refused(body)
    assert error.code == "invalid_json"
    assert "same key twice" in error.errors[0]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
def test_non_finite_numbers_are_refused(literal):
    body = encode(example())[:-1] + b', "extra": ' + literal + b"}"
    assert refused(body).code == "invalid_json"


@pytest.mark.parametrize("number", [2**60, -(2**60), 2**53])
def test_integers_beyond_i_json_are_refused(number):
    body = encode(example() | {"extra": number})
    assert refused(body).code == "invalid_json"


def test_a_lone_surrogate_is_refused_but_ids_are_kept():
    body = encode(example()).replace(b'"Sam"', b'"S\\ud800m"')
    error = refused(body)
    assert error.code == "invalid_text"
    assert error.errors == ["child.given_name: text contains an unpaired surrogate (\\ud800-\\udfff)"]
    assert error.ids == {"notification_id": "oakwood-2026-000457"}


def test_a_surrogate_pair_escape_is_fine_and_nul_is_refused():
    document = example() | {"reason": "A \U0001F600 concern"}
    body = json.dumps(document, ensure_ascii=True).encode()
    assert parse_notification(body, KEY, now=NOW).reason == "A \U0001F600 concern"
    assert refused(encode(example() | {"reason": "a\x00b"})).code == "invalid_text"


def test_invalid_utf8_is_refused():
    body = encode(example()).replace(b"Oakwood", b"Oak\xffwood")
    error = refused(body)
    assert error.code == "not_utf8"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-unknown"])
def test_compressed_bodies_are_refused_without_decompressing(encoding):
    error = refused(gzip.compress(encode(example())), content_encoding=encoding)
    assert error.code == "content_encoding"


@pytest.mark.parametrize("encoding", [None, "", "identity", "utf-8", "UTF-8", "utf8"])
def test_plain_encodings_are_accepted(encoding):
    assert parse_notification(encode(example()), KEY, now=NOW, content_encoding=encoding)


def test_a_body_over_one_mebibyte_is_refused_with_its_size():
    body = encode(example() | {"reason": "x" * MAX_BODY_BYTES})
    error = refused(body)
    assert error.code == "too_large"
    assert error.original_size == len(body)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_a_body_that_is_not_an_object_is_refused(body):
    assert refused(body).code == "not_an_object"


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"\xef\xbb\xbf{}", b'{"a": 1} {}'])
def test_a_body_that_is_not_json_is_refused(body):
    assert refused(body).code in {"invalid_json", "not_utf8"}


@pytest.mark.parametrize(
    ("version", "needle"), [(2, "known versions: 1"), ("1", "JSON integer"), (1.0, "JSON integer"), (True, "JSON integer")]
)
def test_unknown_or_mistyped_schema_versions_are_refused(version, needle):
    error = refused(encode(example() | {"schema_version": version}))
    assert error.code == "unknown_version"
    assert needle in error.reason


def test_a_missing_schema_version_is_refused():
    document = example()
    del document["schema_version"]
    error = refused(encode(document))
    assert error.code == "unknown_version" and "no schema_version" in error.reason


def test_ids_are_read_only_when_short_strings():
    document = example() | {"notification_id": "x" * 201, "kind": "gossip"}
    assert refused(encode(document)).ids == {}


def test_a_naive_clock_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_notification(encode(example()), KEY, now=datetime(2026, 11, 20, 10))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 20 + b'"[",' * 250_000 + b"1" + b"]" * 20,  # a quarter of a million strings full of brackets
        b"[" * 40 + b'"' + b'\\"' * 500_000,  # an unterminated string of escaped quotes
        b"[" * 40 + b'"' + b'\\"' * 500_000 + b"\\",  # ... ending in a lone backslash
        b'{"a":' + b"[]" * 400_000 + b"}",  # many shallow brackets
        b'["' + b"[" * 50 + b'"]',  # every bracket inside a string
    ],
)
def test_the_depth_scan_is_fast_on_hostile_bodies(body):
    started = time.perf_counter()
    with pytest.raises(MessageRefused):
        parse_notification(body, KEY, now=NOW)
    assert time.perf_counter() - started < 0.5
