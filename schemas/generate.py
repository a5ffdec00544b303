"""Writes the contract's JSON Schemas and AsyncAPI document from the models; `--check` reports drift.

    python -m earlyhelp.schemas.generate          # rewrite schemas/generated/
    python -m earlyhelp.schemas.generate --check  # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .events import EVENT_MODELS
from .notification import SOURCES, Notification
from .routing import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, NOTIFICATIONS_EXCHANGE

GENERATED_DIR = Path(__file__).parent / "generated"
ASYNCAPI_FILE = "asyncapi.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_AMQP_BINDING_VERSION = "0.3.0"

_DESCRIPTION = (
    "The public message contract of earlyhelp, version 1. Upstream systems send notifications to the "
    f"`{NOTIFICATIONS_EXCHANGE}` topic exchange (routing key `notification.<source>`); workers' and triage "
    f"tools and case systems send commands to `{COMMANDS_EXCHANGE}` (routing key `case.<command>`); the engine "
    f"alone publishes events to `{EVENTS_EXCHANGE}`, and subscribers bind their own queues with a trailing `#`. "
    "Every message: content_type application/json, UTF-8 JSON body, persistent (delivery_mode 2). The engine "
    "recognises a repeat by the body's own id (notification_id, command_id): an exact repeat changes nothing; "
    "the same id with a different body (compared as parsed content) is refused as a conflict. Times carry a "
    "time zone; \"not in the future\" allows 5 minutes of clock skew. A body over 1 MiB, or one that is not a "
    f"JSON object of a known schema_version, is refused and copied to the `{DEAD_LETTER_QUEUE}` quorum queue. "
    "Events name the case, not the child, except case.allocated (for the allocated team) and the school's own "
    "school.<urn>.* events (only with consent to share). Where this document and the contract page disagree, "
    "the contract page is right."
)
_DISTRICT = {
    "description": "The case's district as a slug (lowercase, each run of other characters a `-`), "
    "or `unassigned` before triage.",
    "examples": ["tonbridge-and-malling", "unassigned"],
}
_URN = {"description": "The child's school URN (6 digits).", "examples": ["118923"]}
_SOURCE = {"description": "The referrer's source (the notification's referrer.source).", "examples": ["school"]}


def _messages() -> list[tuple[str, type[BaseModel], str]]:
    """(message name, model, JSON Schema mode): inbound messages as accepted, events as published."""
    # The commands the engine handles: its command table (imported here: the domain imports the schemas).
    from earlyhelp.workflows.commands import COMMANDS

    found: list[tuple[str, type[BaseModel], str]] = [("notification", Notification, "validation")]
    found += [(f"command.{name}", spec.model, "validation") for name, spec in COMMANDS.items()]
    found += [(f"event.{event_type}", model, "serialization") for event_type, model in EVENT_MODELS.items()]
    return found


def _json_schema(name: str, model: type[BaseModel], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{name}.schema.json", **schema}


def _exchange_binding(exchange: str) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"},
            "bindingVersion": _AMQP_BINDING_VERSION,
        }
    }


def _operation_binding(mandatory: bool | None = None) -> dict[str, Any]:
    """AMQP bindings 0.3.0 put a message's publish properties (delivery_mode, mandatory) on the operation."""
    amqp: dict[str, Any] = {"deliveryMode": 2}  # persistent, every message of the contract
    if mandatory is not None:
        amqp["mandatory"] = mandatory
    return {"amqp": {**amqp, "bindingVersion": _AMQP_BINDING_VERSION}}


def _event_address(event_type: str) -> tuple[str, dict[str, Any]]:
    if event_type.startswith("school."):
        return f"school.{{urn}}.{event_type.removeprefix('school.')}", {"urn": _URN}
    if event_type.startswith("referrer."):
        return f"referrer.{{source}}.{event_type.removeprefix('referrer.')}", {"source": _SOURCE}
    if event_type.endswith(".rejected"):
        return event_type, {}
    return f"{event_type}.{{district}}", {"district": _DISTRICT}


def _summary(model: type[BaseModel]) -> str:
    return (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ").replace("    ", " ")


def asyncapi() -> dict[str, Any]:
    """One AsyncAPI 3.0 document: the engine's view (it receives notifications and commands, sends events)."""
    messages = _messages()
    refs, definitions = models_json_schema(
        [(model, mode) for _, model, mode in messages],  # type: ignore[misc]
        ref_template="#/components/schemas/{model}",
    )
    components_messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, model, mode in messages:
        components_messages[name] = {
            "name": name,
            "title": model.__name__,
            "summary": _summary(model),
            "contentType": "application/json",
            "payload": refs[(model, mode)],  # type: ignore[index]
        }
        if name == "notification":
            address, parameters, exchange, action = "notification.{source}", {
                "source": {"enum": list(SOURCES), "description": "The referrer.source of the body."}
            }, NOTIFICATIONS_EXCHANGE, "receive"
        elif name.startswith("command."):
            address, parameters, exchange, action = f"case.{name.removeprefix('command.')}", {}, COMMANDS_EXCHANGE, "receive"
        else:
            address, parameters = _event_address(name.removeprefix("event."))
            exchange, action = EVENTS_EXCHANGE, "send"
        channel: dict[str, Any] = {
            "address": address,
            "description": _summary(model),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": _exchange_binding(exchange),
        }
        if parameters:
            channel["parameters"] = parameters
        channels[name] = channel
        operations[f"{action}.{name}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
            # An event that no subscriber has bound is delivered to nobody: not mandatory.
            "bindings": _operation_binding(mandatory=False) if action == "send" else _operation_binding(),
        }
    inbound = [name for name, _, _ in messages if not name.startswith("event.")]
    channels["dead-letter"] = {
        "address": DEAD_LETTER_QUEUE,
        "description": "Every message the engine refused or could not handle, with its original body and "
        "properties and the headers x-earlyhelp-error, x-earlyhelp-original-exchange, "
        "x-earlyhelp-original-routing-key and x-earlyhelp-refused-at (x-earlyhelp-truncated for a body over "
        "1 MiB, kept as its first 64 KiB); a copy the broker dead-letters itself carries x-death instead.",
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in inbound},
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {"name": DEAD_LETTER_QUEUE, "durable": True, "exclusive": False, "autoDelete": False, "vhost": "/"},
                "bindingVersion": _AMQP_BINDING_VERSION,
            }
        },
    }
    operations["send.dead-letter"] = {
        "action": "send",
        "description": "The engine publishes its own copies with user_id set to its broker user; "
        "x-earlyhelp-* headers are believed only on such copies.",
        "channel": {"$ref": "#/channels/dead-letter"},
        "messages": [{"$ref": f"#/channels/dead-letter/messages/{name}"} for name in inbound],
        "bindings": _operation_binding(mandatory=True),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "earlyhelp message contract", "version": "1", "description": _DESCRIPTION},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": definitions.get("$defs", {}), "messages": components_messages},
    }


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    """File name -> exact content, as the code defines the contract now."""
    files = {f"{name}.schema.json": _dump(_json_schema(name, model, mode)) for name, model, mode in _messages()}
    files[ASYNCAPI_FILE] = _dump(asyncapi())
    return files


def write_all(target_dir: Path | None = None) -> list[Path]:
    """Write every generated file (removing stale .json files there); returns the paths written."""
    target = Path(target_dir) if target_dir is not None else GENERATED_DIR
    target.mkdir(parents=True, exist_ok=True)
    files = expected_files()
    for stale in sorted(target.glob("*.json")):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, content in sorted(files.items()):
        path = target / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def drifted(target_dir: Path | None = None) -> list[str]:
    """Names of files that differ from what the code generates, are missing, or should not be there."""
    target = Path(target_dir) if target_dir is not None else GENERATED_DIR
    files = expected_files()
    present = {path.name for path in target.glob("*.json")} if target.is_dir() else set()
    changed = [
        name for name, content in files.items()
        if name not in present or (target / name).read_text(encoding="utf-8") != content
    ]
    return sorted(changed + [name for name in present if name not in files])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m earlyhelp.schemas.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ from the code")
    parser.add_argument("--target", type=Path, default=None, help="folder (default: schemas/generated)")
    args = parser.parse_args(argv)
    if args.check:
        names = drifted(args.target)
        for name in names:
            print(f"drifted: {name}", file=sys.stderr)
        if names:
            print("run: python -m earlyhelp.schemas.generate", file=sys.stderr)
        return 1 if names else 0
    for path in write_all(args.target):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
