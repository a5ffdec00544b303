"""The engine's message handlers, one per input, and the table that routes a delivery to its handler.

A handler runs inside the batch's transaction (a `Batch`, consumers/batch.py): it drops repeats, loads the case, fires
the transition through the domain (`workflows`) and stages history, events and the processed id.
Adding a command is one model (schemas), one domain function and its entry in the command table
(workflows/commands.py), its tests; the table here routes every `case.<command>` key to `handle_command`,
and the command table says which commands are routed and which need the case's details.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from earlyhelp.schemas import (
    COMMANDS_EXCHANGE, NOTIFICATIONS_EXCHANGE, MessageRefused, content_hash, parse_command, parse_notification,
)
from earlyhelp.workflows.case_flow import CommandOutOfOrder
from earlyhelp.workflows.case_machine import TransitionNotAllowed
from earlyhelp.workflows.senders import SenderRefused

from .delivery import Delivery
from .recording import case_id_for, command_key, notification_key, record_changes

if TYPE_CHECKING:
    from .batch import Batch


@dataclass
class Handled:
    """What became of one delivery: for logs, metrics and tests."""

    outcome: str  # opened | linked | applied | repeat | refused | conflict | not_allowed
    case_id: str | None = None
    reason: str | None = None
    message_key: str | None = None


@dataclass
class Parsed:
    """A delivery decoded and validated before the transaction opens (validation needs no database)."""

    delivery: Delivery
    input: str  # "notification" | "command"
    message: object = None
    refusal: MessageRefused | None = None

    @property
    def key(self) -> str | None:
        """The processed-id key: notification ids per source, command ids per sender (recording.py)."""
        if self.message is None:
            return None
        if self.input == "notification":
            return notification_key(self.message.referrer.source, self.message.notification_id)
        return command_key(self.message.command_id, self.delivery.user_id)

    @property
    def ident(self) -> str | None:
        """The message's own id (notification_id or command_id)."""
        if self.message is None:
            return None
        return self.message.notification_id if self.input == "notification" else self.message.command_id

    @property
    def case_id(self) -> str | None:
        if self.message is None:
            return None
        if self.input == "notification":
            return case_id_for(self.message.referrer.source, self.message.notification_id)
        return self.message.case_id


def parse(delivery: Delivery, now: datetime, districts, commands=None) -> Parsed:
    """Decode and validate by the exchange the message came through; `commands`: the command models routed by
    name (the flow's command table; default every command model)."""
    if delivery.exchange == NOTIFICATIONS_EXCHANGE:
        kind, parser = "notification", lambda: parse_notification(
            delivery.body, delivery.routing_key, now=now, content_encoding=delivery.content_encoding)
    elif delivery.exchange == COMMANDS_EXCHANGE:
        kind, parser = "command", lambda: parse_command(
            delivery.body, delivery.routing_key, now=now, districts=districts,
            content_encoding=delivery.content_encoding, models=commands)
    else:
        refusal = MessageRefused(f"messages from exchange '{delivery.exchange}' are not for the engine",
                                 [f"exchange: expected {NOTIFICATIONS_EXCHANGE} or {COMMANDS_EXCHANGE}"],
                                 code="wrong_exchange")
        return Parsed(delivery, "command" if delivery.routing_key.startswith("case.") else "notification",
                      refusal=refusal)
    try:
        return Parsed(delivery, kind, message=parser())
    except MessageRefused as refusal:
        return Parsed(delivery, kind, refusal=refusal)


def sender_refusal(refused: SenderRefused, ids: dict) -> MessageRefused:
    return MessageRefused(refused.reason, refused.errors, ids=ids, code=refused.code)


def handle_notification(batch: Batch, parsed: Parsed) -> Handled:
    notification = parsed.message
    try:  # the routing key's source equals the body's (parse_notification checks it)
        batch.flow.senders.check_notification(parsed.delivery.user_id, notification.referrer.source)
    except SenderRefused as refused:
        return batch.refuse(parsed, sender_refusal(refused, {"notification_id": notification.notification_id}))
    digest = content_hash(notification)
    if (earlier := batch.repeat_or_conflict(parsed, digest)) is not None:
        return earlier
    stored = batch.stored_json(parsed)
    known, matched_on, previous = batch.match(parsed)  # a child already known: through the keyed hashes
    if known is not None:
        return link_notification(batch, parsed, digest, known, matched_on, stored)
    case, changes = batch.flow.open(parsed.case_id, notification, previous)
    batch.store.add_case(case, stored, batch.now, {
        "referral_source_code": notification.referrer.referral_source_code,
        "social_care_status": getattr(notification.social_care_status, "value", notification.social_care_status),
        "placed_by_other_authority": bool(notification.child.placing_authority),
    }, digests=batch.digests.get(id(parsed)))  # hashed once, in preload
    batch.cases[case.case_id], batch.details[case.case_id] = case, notification
    record_changes(batch.store, case, changes, batch.now, parsed.delivery.user_id)
    batch.mark_processed(parsed, digest, case.case_id)
    batch.known(parsed, case.case_id)
    return Handled("opened", case.case_id, message_key=parsed.key)


def link_notification(batch: Batch, parsed: Parsed, digest: str, case, matched_on: list[str], stored: dict) -> Handled:
    """A notification for the child of an open case joins it (case.notification_linked; its referrer hears
    `linked`): no second case, the clocks untouched, its details kept with the case (linked_notifications).
    Its id is recorded against the case, so a repeat is a repeat and other content under it a conflict."""
    notification = parsed.message
    working = replace(case)
    change = batch.flow.link(working, notification, matched_on)
    batch.cases[case.case_id] = working
    batch.store.change_case(working, batch.versions_read.get(case.case_id, case.version))
    batch.store.add_linked({
        "case_id": case.case_id, "notification_id": notification.notification_id,
        "source": change.data["source"], "kind": change.data["kind"], "received_at": notification.received_at,
        "linked_at": batch.now, "matched_on": list(matched_on), "notification": stored})
    record_changes(batch.store, working, [change], batch.now, parsed.delivery.user_id)
    batch.mark_processed(parsed, digest, case.case_id)
    return Handled("linked", case.case_id, message_key=parsed.key)


def handle_command(batch: Batch, parsed: Parsed) -> Handled:
    command = parsed.message
    senders, user_id = batch.flow.senders, parsed.delivery.user_id
    ids = {"command_id": command.command_id, "case_id": command.case_id}
    try:  # who may send this command in this role, before anything about the case is read or told
        senders.check_command(user_id, command.name, command.actor.role)
    except SenderRefused as refused:
        return batch.refuse(parsed, sender_refusal(refused, ids))
    digest = content_hash(command)
    if (earlier := batch.repeat_or_conflict(parsed, digest)) is not None:
        return earlier
    case = batch.cases.get(command.case_id)
    if case is None:
        return batch.refuse(parsed, MessageRefused(
            f"case '{command.case_id}' is not known to the engine; check the case id",
            ["case_id: no such case"], ids=ids, code="unknown_case"))
    try:  # a case in the sender's districts, and for triage a district it may send cases to
        senders.check_case(user_id, case.district, command.district if command.name == "triage" else None)
    except SenderRefused as refused:
        return batch.refuse(parsed, sender_refusal(refused, ids))
    # Work on a copy: a refused command must leave the batch's view of the case untouched.
    working = replace(case)
    spec = batch.flow.commands.get(command.name)  # None: the flow refuses it as an unknown command
    notification = batch.notification_of(case.case_id) if spec is not None and spec.needs_details else None
    try:
        outcome = batch.flow.apply(working, command, notification)
    except TransitionNotAllowed as refused:
        return batch.refuse(parsed, MessageRefused(
            refused.reason, [refused.error], ids=ids, code="not_allowed_in_state"),
            dead_letter=False, extra={"command": command.name, "state": refused.state})
    except CommandOutOfOrder as late:
        # Like a state that does not allow it: a normal outcome, no dead-letter copy, the id not recorded.
        return batch.refuse(parsed, MessageRefused(
            f"'{command.name}' was issued at {late.issued_at.isoformat()}, before the case's latest change "
            f"happened ({late.last_occurred_at.isoformat()}); the command was not applied: check its issued_at",
            ["issued_at: earlier than the case's latest change"], ids=ids, code="time_out_of_order"),
            dead_letter=False, extra={"command": command.name, "state": case.state})
    except MessageRefused as refusal:
        refusal.ids.setdefault("command_id", command.command_id)
        refusal.ids.setdefault("case_id", case.case_id)
        return batch.refuse(parsed, refusal)
    batch.cases[case.case_id] = working
    batch.store.change_case(working, batch.versions_read.get(case.case_id, case.version))
    if outcome.notification is not notification:
        batch.details[case.case_id] = outcome.notification
        batch.store.change_details(case.case_id, outcome.notification.model_dump(mode="json", exclude_none=True))
    record_changes(batch.store, working, outcome.changes, batch.now, parsed.delivery.user_id)
    batch.mark_processed(parsed, digest, case.case_id)
    return Handled("applied", case.case_id, message_key=parsed.key)


# The one table that routes an input to its handler.
HANDLERS = {"notification": handle_notification, "command": handle_command}


def handle(batch: Batch, parsed: Parsed) -> Handled:
    if parsed.refusal is not None:
        return batch.refuse(parsed, parsed.refusal)
    return HANDLERS[parsed.input](batch, parsed)
