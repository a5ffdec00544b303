"""Which broker user may send what: the senders policy (EARLYHELP_SENDERS, docs/contract.md "Senders and what each may do").

RabbitMQ checks a message's AMQP `user_id` against the connection's user, so it names the sender for
certain; the command's `actor` is only the sender's claim. The policy holds each message to its
sender's entry: which notification sources, which commands, claiming which actor roles, on cases of
which districts. Every check is a dict or set look-up: no query per message.

Pure: `parse_senders` takes the parsed TOML (or `senders_from_text` its text) and returns the policy;
only `load_senders`, called once at start, reads the file. Without a file the policy is open: every
sender may do everything, with or without `user_id`.
"""
from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from earlyhelp.schemas import COMMAND_MODELS, DEFAULT_DISTRICTS, SOURCES, district_slug
from earlyhelp.schemas.routing import UNASSIGNED

ALL_DISTRICTS = "*"
UNKNOWN_SENDER, NOT_PERMITTED = "unknown_sender", "not_permitted"
# Commands the contract names that a senders file may list before this engine handles them (the
# contract's own example lists extend_clock); a name in neither is a typo and stops `serve`.
CONTRACT_COMMANDS = frozenset({"extend_clock"})
_ENTRY_KEYS = ("notifications", "commands", "roles", "districts")


class SendersError(ValueError):
    """The senders file cannot be used; the message names the file and the key to fix."""


class SenderRefused(Exception):
    """The sender may not do this: refused like bad input, with `code` unknown_sender or not_permitted."""

    def __init__(self, code: str, reason: str, errors: list[str]) -> None:
        super().__init__(reason)
        self.code, self.reason, self.errors = code, reason, errors


@dataclass(frozen=True)
class Sender:
    """One broker user's entry. `districts` holds district slugs (and `unassigned`); None means all."""

    name: str
    notifications: frozenset[str] = frozenset()
    commands: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    districts: frozenset[str] | None = frozenset()

    def covers(self, district: str | None) -> bool:
        return self.districts is None or district_slug(district) in self.districts


class SendersPolicy:
    """The senders file, parsed; `SendersPolicy(None)` is the open policy (no file)."""

    def __init__(self, senders: dict[str, Sender] | None) -> None:
        self.senders = senders

    @property
    def is_open(self) -> bool:
        return self.senders is None

    def check_notification(self, user_id: str | None, source: str) -> None:
        """Raise SenderRefused unless `user_id` may send notifications from `source`."""
        if self.senders is None:
            return
        sender = self._sender(user_id)
        if source not in sender.notifications:
            raise SenderRefused(NOT_PERMITTED, f"Sender {_shown(sender.name)} may not send notifications from "
                                f"source '{source}'; nothing was changed.",
                                ["referrer.source: not permitted for this sender"])

    def check_command(self, user_id: str | None, command: str, role: str) -> None:
        """Raise SenderRefused unless `user_id` may send `command` claiming `role` (before the case is read)."""
        if self.senders is None:
            return
        sender = self._sender(user_id)
        if command not in sender.commands:
            raise SenderRefused(NOT_PERMITTED, f"Sender {_shown(sender.name)} may not send '{command}' commands; "
                                "nothing was changed.", ["routing_key: command not permitted for this sender"])
        if role not in sender.roles:
            raise SenderRefused(NOT_PERMITTED, f"Sender {_shown(sender.name)} may not act in role {_shown(role)}; "
                                "nothing was changed.", ["actor.role: not permitted for this sender"])

    def check_case(self, user_id: str | None, district: str | None, target: str | None = None) -> None:
        """Raise SenderRefused unless `user_id` may act on a case in `district` (None: unassigned) and, for
        triage, send it to `target`. Call after check_command."""
        if self.senders is None:
            return
        sender = self._sender(user_id)
        if not sender.covers(district):
            raise SenderRefused(NOT_PERMITTED, f"Sender {_shown(sender.name)} may not act on cases in "
                                f"'{district_slug(district)}'; nothing was changed.",
                                ["case_id: the case's district is not permitted for this sender"])
        if target is not None and not sender.covers(target):
            raise SenderRefused(NOT_PERMITTED, f"Sender {_shown(sender.name)} may not triage cases to "
                                f"'{district_slug(target)}'; nothing was changed.",
                                ["district: not permitted for this sender"])

    def _sender(self, user_id: str | None) -> Sender:
        if not user_id:
            raise SenderRefused(UNKNOWN_SENDER, "The message has no AMQP user_id, so the engine cannot tell who sent "
                                "it; publish with user_id set to your broker user name.", ["user_id: missing"])
        sender = self.senders.get(user_id)
        if sender is None:
            raise SenderRefused(UNKNOWN_SENDER, f"Broker user {_shown(user_id)} is not a known sender; ask the "
                                "service to add it to the senders file.", ["user_id: not a known sender"])
        return sender


OPEN = SendersPolicy(None)


def parse_senders(raw: dict, origin: str, districts: Sequence[str] = DEFAULT_DISTRICTS,
                  commands: Iterable[str] | None = None, sources: Iterable[str] = SOURCES) -> SendersPolicy:
    """The policy from a parsed senders file; raises SendersError naming `origin` and the key."""
    known_commands = frozenset(COMMAND_MODELS if commands is None else commands) | CONTRACT_COMMANDS
    known_sources = frozenset(sources)
    known_districts = {district_slug(d) for d in districts} | {UNASSIGNED}

    def fail(key: str, problem: str) -> SendersError:
        return SendersError(f"the senders file {origin}: {key}: {problem}")

    extra = sorted(set(raw) - {"senders"})
    if extra:
        raise fail(extra[0], "unknown key; the file holds only [senders.<broker user>] tables")
    table = raw.get("senders")
    if not isinstance(table, dict) or not table:
        raise fail("senders", "give at least one [senders.<broker user>] table")
    senders: dict[str, Sender] = {}
    for name, entry in table.items():
        where = f"senders.{name}"
        if not isinstance(entry, dict):
            raise fail(where, "must be a table")
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        if unknown:
            raise fail(f"{where}.{unknown[0]}", f"unknown key; use {', '.join(_ENTRY_KEYS)}")
        lists = {}
        for key in _ENTRY_KEYS:
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise fail(f"{where}.{key}", "must be a list of words")
            lists[key] = value
        _known(lists["notifications"], known_sources, f"{where}.notifications", "a notification source", fail)
        _known(lists["commands"], known_commands, f"{where}.commands", "a command", fail)
        if lists["commands"] and not (lists["roles"] and lists["districts"]):
            raise fail(f"{where}.{'roles' if not lists['roles'] else 'districts'}",
                       "required with commands (which actor roles, which districts' cases)")
        if ALL_DISTRICTS in lists["districts"]:
            area = None
        else:
            area = frozenset(district_slug(d) for d in lists["districts"])
            unknown_area = [d for d in lists["districts"] if district_slug(d) not in known_districts]
            if unknown_area:
                raise fail(f"{where}.districts", f"'{unknown_area[0]}' is not one of the configured districts, "
                           f"'{UNASSIGNED}' or '{ALL_DISTRICTS}'")
        senders[name] = Sender(name, frozenset(lists["notifications"]), frozenset(lists["commands"]),
                               frozenset(lists["roles"]), area)
    return SendersPolicy(senders)


def senders_from_text(text: str, origin: str, districts: Sequence[str] = DEFAULT_DISTRICTS) -> SendersPolicy:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SendersError(f"the senders file {origin} is not valid TOML: {exc}") from None
    return parse_senders(raw, origin, districts)


def load_senders(path: Path | None, districts: Sequence[str] = DEFAULT_DISTRICTS) -> SendersPolicy:
    """The policy in EARLYHELP_SENDERS, read once at start; None (no file) is the open policy."""
    if path is None:
        return OPEN
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise SendersError(f"cannot read the senders file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SendersError(f"the senders file {path} is not UTF-8 text") from None
    return senders_from_text(text, str(path), districts)


def _known(values: list[str], known: frozenset[str], key: str, what: str, fail) -> None:
    for value in values:
        if value not in known:
            raise fail(key, f"'{value}' is not {what} the engine knows")


def _shown(name: str) -> str:
    # A user name or role goes into a rejection's reason only when plain (it is not personal data).
    return repr(name) if name.isprintable() and len(name) <= 100 else "(an unprintable or over-long name)"
