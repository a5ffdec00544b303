"""Client commands: `submit` notifications, send a staff `command`, `watch` events."""
from __future__ import annotations

import json
import sys
import uuid

import click

from earlyhelp.clock import utc_now as _now
from earlyhelp.schemas import (
    COMMANDS_EXCHANGE, EVENTS_EXCHANGE, NOTIFICATIONS_EXCHANGE, MessageRefused, parse_command,
    parse_notification,
)


def _client(settings):
    from earlyhelp.producers.upstream_client import UpstreamClient

    if settings.is_memory_broker:
        raise click.ClickException("submit, command and watch need a RabbitMQ broker; memory:// lives in one process")
    try:
        return UpstreamClient(settings.broker_url, ca_file=settings.broker_ca_file)
    except Exception as error:  # noqa: BLE001 - pika raises several kinds for "not there"
        raise click.ClickException(f"cannot reach RabbitMQ at the configured EARLYHELP_BROKER_URL ({type(error).__name__})")


def read_documents(stream) -> list[tuple[int, bytes]]:
    """One JSON object, or JSON Lines: returns (line number, raw bytes) for each document."""
    raw = stream.read()
    text = raw.strip()
    if not text:
        return []
    try:
        json.loads(text)
        return [(1, text)]
    except (ValueError, RecursionError):
        pass
    return [(n, line.strip()) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]


@click.command()
@click.argument("source", type=click.File("rb"))
@click.pass_obj
def submit(settings, source) -> None:
    """Validate notifications (one JSON object or JSON Lines; '-' reads stdin) and publish them with confirms.

    Each is sent with `user_id` set to the broker URL's user, which the engine's senders file judges.
    """
    documents = read_documents(source)
    if not documents:
        raise click.ClickException("no notification found in the input")
    failures, blocked = 0, False
    with _client(settings) as client:
        for line, body in documents:
            label = f"line {line}"
            try:
                obj = json.loads(body)
                source_word = obj.get("referrer", {}).get("source") if isinstance(obj, dict) else None
                key = f"notification.{source_word}"
                notification = parse_notification(body, key, now=_now())
            except MessageRefused as refused:
                failures += 1
                click.echo(f"{label}: refused, not sent: {refused.reason}")
                for error in refused.errors:
                    click.echo(f"    {error}")
                continue
            except (ValueError, RecursionError, AttributeError):
                failures += 1
                click.echo(f"{label}: refused, not sent: not a JSON object")
                continue
            if blocked:
                failures += 1
                click.echo(f"{label}: {notification.notification_id}: not sent: the broker blocks publishers")
                continue
            sent = client.publish(NOTIFICATIONS_EXCHANGE, key, body, message_id=notification.notification_id)
            failures += 0 if sent.ok else 1
            click.echo(f"{label}: {notification.notification_id}: {sent.outcome}: {sent.explanation}")
            blocked = sent.outcome == "blocked"  # pika closed the connection: the rest are not sent
    click.echo(f"{len(documents) - failures} sent, {failures} not sent")
    if blocked:
        click.echo("the broker was blocking publishers: send the ones not sent again once its alarm clears")
    if failures:
        sys.exit(1)


def _own_field_types(model) -> dict[str, str | None]:
    """A command model's own fields and their JSON types (array, object, string...), from its JSON Schema."""
    from earlyhelp.schemas.contract_doc import COMMON_COMMAND_FIELDS

    schema = model.model_json_schema()
    found = {}
    for name, prop in schema["properties"].items():
        if name in COMMON_COMMAND_FIELDS:
            continue
        if "$ref" in prop:
            prop = schema.get("$defs", {}).get(prop["$ref"].rsplit("/", 1)[-1], {})
        found[name] = prop.get("type")
    return found


def command_fields(model, pairs: dict) -> dict:
    """The command's own fields from KEY=VALUE pairs: a command whose one own field is an object (provide_information's
    `fields`) takes every pair as a key of it; an array field (request_information's `missing`) is comma-separated;
    an object beside other fields (extend_clock's `extra`) is given by dotted keys, `extra.amount=3`."""
    types = _own_field_types(model)
    objects = [name for name, kind in types.items() if kind == "object"]
    if objects and len(types) == 1:
        return {objects[0]: pairs}
    found: dict = {}
    for key, value in pairs.items():
        head, dot, rest = key.partition(".")
        if dot and head in objects:
            found.setdefault(head, {})[rest] = int(value) if isinstance(value, str) and value.isdigit() else value
        else:
            found[key] = [p for p in value.split(",") if p] if types.get(key) == "array" and isinstance(value, str) \
                else value
    return found


def _command_names() -> list[str]:
    from earlyhelp.workflows.commands import COMMANDS

    return sorted(COMMANDS)


def _parse_value(value: str):
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


@click.command(name="command")
@click.argument("name", type=click.Choice(_command_names()))
@click.argument("case_id")
@click.argument("fields", nargs=-1)
@click.option("--actor", default="cli:staff", show_default=True, help="Who is acting, as ID:ROLE.")
@click.option("--command-id", default=None, help="Defaults to a new UUID.")
@click.option("--issued-at", default=None, help="ISO 8601 time with a zone; defaults to now.")
@click.pass_obj
def command(settings, name, case_id, fields, actor, command_id, issued_at) -> None:
    """Send a staff command: earlyhelp command triage CASE_ID service=early_help_unit district=Maidstone.

    Lists (request_information's `missing`) are comma-separated; provide_information takes each
    key=value as a field path and its value. Sent with `user_id` set to the broker URL's user: the
    sender the engine holds to its senders file; --actor is only the claim of who acted.
    """
    from earlyhelp.workflows.commands import COMMANDS, command_models

    actor_id, _, role = actor.partition(":")
    body = {"schema_version": 1, "command_id": command_id or str(uuid.uuid4()), "case_id": case_id,
            "actor": {"id": actor_id, "role": role or "staff"}, "issued_at": issued_at or _now().isoformat()}
    pairs = {}
    for item in fields:
        if "=" not in item:
            raise click.BadParameter(f"'{item}' is not KEY=VALUE", param_hint="FIELDS")
        key, value = item.split("=", 1)
        pairs[key] = _parse_value(value)
    body.update(command_fields(COMMANDS[name].model, pairs))
    raw = json.dumps(body).encode()
    key = f"case.{name}"
    try:
        parse_command(raw, key, now=_now(), districts=settings.district_names,
                      models=command_models(COMMANDS))
    except MessageRefused as refused:
        raise click.ClickException(f"{refused.reason}: " + "; ".join(refused.errors)) from None
    with _client(settings) as client:
        sent = client.publish(COMMANDS_EXCHANGE, key, raw, message_id=body["command_id"])
    click.echo(f"{body['command_id']}: {sent.outcome}: {sent.explanation}")
    if not sent.ok:
        sys.exit(1)


PERSONAL_DATA_KEYS = ("child", "notifier")


def hide_personal(event: dict) -> dict:
    data = event.get("data")
    if isinstance(data, dict) and any(k in data for k in PERSONAL_DATA_KEYS):
        event = {**event, "data": {k: ("[hidden: --show-personal]" if k in PERSONAL_DATA_KEYS else v)
                                   for k, v in data.items()}}
    return event


@click.command()
@click.argument("bindings", nargs=-1)
@click.option("--show-personal", is_flag=True, help="Show the child's and notifier's details where events carry them.")
@click.option("--reason", default=None, help="Why (required with --show-personal; logged in the access log).")
@click.option("--count", type=int, default=0, help="Stop after this many events (0: run until interrupted).")
@click.option("--timeout", type=float, default=0, help="Stop after this many seconds without an event (0: never).")
@click.pass_obj
def watch(settings, bindings, show_personal, reason, count, timeout) -> None:
    """Print events as they come (bindings like case.allocated.# or sla.breached.#; default all)."""
    if show_personal:  # issue 13: --reason, and a row in the access log before anything is shown
        from .records import log_view, require_reason

        log_view(settings, command="watch --show-personal", case_ids=[], reason=require_reason(
            reason, "watch --show-personal"), shown="events' personal data on " + " ".join(bindings or ("#",)))
    client = _client(settings)
    channel = client.connection.channel()
    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    try:
        for binding in bindings or ("#",):
            channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key=binding)
    except Exception as error:  # noqa: BLE001
        raise click.ClickException(f"cannot bind to {EVENTS_EXCHANGE} (has `earlyhelp serve` run once?): {error}")
    seen = 0
    for method, _props, body in channel.consume(queue, auto_ack=True, inactivity_timeout=timeout or None):
        if method is None:
            break
        try:
            event = json.loads(body)
            shown = event if show_personal else hide_personal(event)
        except ValueError:
            shown = {"unreadable_body_bytes": len(body)}
        # json.dumps escapes control characters; the routing key is printed as text, so escape it too.
        from earlyhelp.printing import escape

        click.echo(f"{escape(method.routing_key)} {json.dumps(shown, sort_keys=True)}")
        seen += 1
        if count and seen >= count:
            break
    client.close()


COMMANDS = [submit, command, watch]
