"""Refusing a hostile 1 MiB body is fast and its refusal stays within the contract's bounds.

docs/contract.md, "Refusals and the dead-letter queue": `reason` at most 2,000 characters, `errors` at most
20 entries then one "and N more", errors found in time linear in the body's size. Timings are taken
with perf_counter around the parse function alone, so a slow machine's set-up does not count.
"""
from __future__ import annotations

import json
import time

import pytest

from earlyhelp.consumers.delivery import Delivery
from earlyhelp.consumers.refusals import rejection_event, rejection_row
from earlyhelp.schemas import MAX_BODY_BYTES, MessageRefused, parse_command, parse_notification
from earlyhelp.schemas.errors import error_paths_of
from tests.factories import NOW, encode, notification_body

COMMAND = {"schema_version": 1, "command_id": "c-1", "case_id": "case-1", "actor": {"id": "a", "role": "r"},
           "issued_at": "2026-01-01T00:00:00Z"}
DEEP = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]


def _within_a_mib(body: bytes) -> bytes:
    assert len(body) <= MAX_BODY_BYTES, len(body)
    return body


def _many_keys(count: int) -> bytes:
    return _within_a_mib(encode({**notification_body(), **{f"k{i}": 1 for i in range(count)}}))


SHAPES = {
    "80,000 unknown keys": ("notification", _many_keys(80_000)),
    "70,000 unknown keys in child": ("notification", _within_a_mib(encode(
        {**notification_body(), "child": {**notification_body()["child"], **{f"c{i}": 1 for i in range(70_000)}}}))),
    "100,000 tiny items that each fail": ("request_information", _within_a_mib(encode(
        {**COMMAND, "missing": ["?"] * 100_000}))),
    "100,000 empty objects": ("notification", _within_a_mib(encode({**notification_body(), "x": [{}] * 100_000}))),
    "a huge string": ("notification", _within_a_mib(encode({**notification_body(), "reason": "a" * 1_000_000}))),
    "many nested-but-allowed arrays": ("notification", _within_a_mib(encode(
        {**notification_body(), "x": [DEEP] * 17_000}))),
    "80,000 unknown provided paths": ("provide_information", _within_a_mib(encode(
        {**COMMAND, "fields": {f"p{i}": 1 for i in range(80_000)}}))),
}


def _parse(kind: str, body: bytes) -> None:
    if kind == "notification":
        parse_notification(body, "notification.school", now=NOW)
    else:
        parse_command(body, f"case.{kind}", now=NOW, districts=["Maidstone"])


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_hostile_mib_is_refused_in_well_under_a_second_within_the_bounds(shape):
    kind, body = SHAPES[shape]
    started = time.perf_counter()
    with pytest.raises(MessageRefused) as caught:
        _parse(kind, body)
    elapsed = time.perf_counter() - started
    print(f"{shape}: {len(body)} bytes refused ({caught.value.code}) in {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0, f"{shape} took {elapsed:.2f} s"
    refusal = caught.value
    assert 0 < len(refusal.reason) <= 2000
    assert 0 < len(refusal.errors) <= 21
    # The rejection event built from it validates against its model (rejection_row serializes it).
    event = rejection_event("notification.rejected", refusal.reason, refusal.errors, refusal.ids,
                            Delivery(body=body, exchange="earlyhelp.notifications", routing_key="x"), NOW)
    assert json.loads(rejection_row(event, NOW)["body"])["reason"] == refusal.reason


def test_eighty_thousand_unknown_keys_are_refused_by_count_before_pydantic():
    with pytest.raises(MessageRefused) as caught:
        parse_notification(_many_keys(80_000), "notification.school", now=NOW)
    refusal = caught.value
    assert refusal.code == "too_many_values" and refusal.errors == ["body: more than 2000 object keys"]
    assert refusal.ids == {"notification_id": notification_body()["notification_id"]}


def test_many_unknown_keys_under_the_count_are_listed_twenty_then_counted():
    with pytest.raises(MessageRefused) as caught:
        parse_notification(_many_keys(1_900), "notification.school", now=NOW)
    refusal = caught.value
    assert refusal.code == "invalid_fields"
    assert "1900 fields are missing or invalid" in refusal.reason and "and 1890 more" in refusal.reason
    assert len(refusal.reason) <= 2000
    assert len(refusal.errors) == 21 and refusal.errors[-1] == "and 1880 more"
    assert all(line.endswith("Extra inputs are not permitted") for line in refusal.errors[:20])


def test_distinct_paths_are_found_in_linear_time():
    items = [(f"k{i}", "Extra inputs are not permitted") for i in range(200_000)] + [("k1", "again")]
    started = time.perf_counter()
    paths = error_paths_of(items)
    assert time.perf_counter() - started < 0.5
    assert len(paths) == 200_000 and paths[:2] == ["k0", "k1"]


def test_every_refusal_is_bounded_however_it_was_built():
    refusal = MessageRefused("x" * 5000, [f"e{i}" for i in range(50)] + ["y" * 5000])
    assert len(refusal.reason) == 2000 and refusal.reason.endswith("…")
    assert len(refusal.errors) == 21 and refusal.errors[-1] == "and 31 more"
    already = MessageRefused("r", [f"e{i}" for i in range(20)] + ["and 500 more"])
    assert already.errors[-1] == "and 500 more", "a list capped upstream keeps its own count"
    assert MessageRefused("r", ["a", "b"]).errors == ["a", "b"]
