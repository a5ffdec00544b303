"""content_hash compares parsed content: equivalent encodings hash the same, a changed value does not."""

from __future__ import annotations

import json

from earlyhelp.schemas import content_hash, parse_command, parse_notification

from .test_schemas_notification import NOW, example


def parsed(body: bytes):
    return parse_notification(body, "notification.school", now=NOW)


def test_equivalent_encodings_hash_the_same():
    document = example()
    plain = json.dumps(document).encode()
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=4, ensure_ascii=True).encode()
    offset = json.dumps(document | {"received_at": "2026-11-20T09:14:00+00:00"}).encode()
    other_zone = json.dumps(document | {"received_at": "2026-11-20T10:14:00+01:00"}).encode()
    explicit_default = json.dumps(document | {"priority": False}).encode()
    hashes = {content_hash(parsed(body)) for body in (plain, reordered, offset, other_zone, explicit_default)}
    assert len(hashes) == 1
    assert len(hashes.pop()) == 64


def test_a_different_value_hashes_differently():
    assert content_hash(parsed(json.dumps(example()).encode())) != content_hash(
        parsed(json.dumps(example() | {"priority": True}).encode())
    )


def test_commands_hash_by_content_too():
    body = {"schema_version": 1, "command_id": "c-1", "case_id": "k-1", "actor": {"id": "a", "role": "r"},
            "issued_at": "2026-11-20T09:14:00Z", "reason": "needs_met"}
    first = parse_command(json.dumps(body).encode(), "case.close", now=NOW)
    second = parse_command(json.dumps(body | {"issued_at": "2026-11-20T09:14:00.000+00:00"}, indent=1).encode(),
                           "case.close", now=NOW)
    assert content_hash(first) == content_hash(second)
