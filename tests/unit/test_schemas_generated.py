"""The committed JSON Schemas and AsyncAPI document match what the models generate (regenerate to fix)."""

from __future__ import annotations

import json

from earlyhelp.schemas import COMMAND_MODELS, EVENT_MODELS, generate


def test_committed_generated_files_match_the_code():
    drifted = generate.drifted()
    assert drifted == [], f"run `python -m earlyhelp.schemas.generate`; drifted: {drifted}"


def test_drift_is_detected_for_changed_missing_and_extra_files(tmp_path):
    generate.write_all(tmp_path)
    assert generate.drifted(tmp_path) == []
    (tmp_path / "notification.schema.json").write_text("{}\n")
    (tmp_path / "command.check.schema.json").unlink()
    (tmp_path / "stale.schema.json").write_text("{}\n")
    assert generate.drifted(tmp_path) == ["command.check.schema.json", "notification.schema.json", "stale.schema.json"]
    generate.write_all(tmp_path)
    assert generate.drifted(tmp_path) == []


def test_one_schema_per_message_and_one_asyncapi_document():
    names = set(generate.expected_files())
    assert "notification.schema.json" in names and "asyncapi.json" in names
    assert {f"command.{name}.schema.json" for name in COMMAND_MODELS} <= names
    assert {f"event.{event_type}.schema.json" for event_type in EVENT_MODELS} <= names


def test_asyncapi_names_the_exchanges_and_routing_keys():
    document = json.loads(generate.expected_files()["asyncapi.json"])
    assert document["asyncapi"] == "3.0.0"
    channels = document["channels"]
    assert channels["notification"]["address"] == "notification.{source}"
    assert channels["command.triage"]["address"] == "case.triage"
    assert channels["event.case.allocated"]["address"] == "case.allocated.{district}"
    assert channels["event.school.closed"]["address"] == "school.{urn}.closed"
    exchange = channels["event.sla.breached.allocation"]["bindings"]["amqp"]["exchange"]
    assert exchange == {"name": "earlyhelp.events", "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}
    assert channels["dead-letter"]["bindings"]["amqp"]["queue"]["name"] == "earlyhelp.dead-letter"
    actions = {op["action"] for op in document["operations"].values()}
    assert actions == {"send", "receive"}
    for message in document["components"]["messages"].values():
        assert message["contentType"] == "application/json"
        assert message["payload"]["$ref"].removeprefix("#/components/schemas/") in document["components"]["schemas"]
