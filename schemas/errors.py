"""Refusals: the exception the engine turns into a rejection event, and safe rendering of pydantic errors."""

from __future__ import annotations

import re

from pydantic import ValidationError

# A loc segment is a field name the sender chose; long or unprintable ones are cut so a
# refusal stays readable and cannot smuggle the message's content into logs.
_MAX_LOC_PART = 64
# Inputs shorter than this are not searched for in messages: "1" or "a" would match
# harmless text such as "at least 1 character".
_MIN_ECHO_LEN = 4
# The contract's bounds on a refusal (docs/contract.md, "Refusals and the dead-letter queue"): a sender can
# make a body fail in 80,000 places, and the rejection event must still be small enough to publish.
MAX_REASON_CHARS = 2000
MAX_ERRORS = 20
# One error line is "path: message"; paths are already cut per segment, but there may be 32 segments.
_MAX_ERROR_LINE = 300
_AND_MORE = re.compile(r"and (\d+) more")


class MessageRefused(Exception):
    """A message the engine will not accept, with what a person needs to correct it.

    `reason` is one sentence a person can act on; `errors` has one entry per problem as
    "field.path: what is wrong", never the value; `ids` holds whichever of notification_id,
    command_id and case_id could be read; `original_size` is set for a body over the limit.
    `code` is a short, stable word for metrics and tests (e.g. "invalid_fields").
    """

    def __init__(
        self,
        reason: str,
        errors: list[str] | None = None,
        *,
        ids: dict[str, str] | None = None,
        original_size: int | None = None,
        code: str = "refused",
    ) -> None:
        reason = cap_reason(reason)
        super().__init__(reason)
        self.reason = reason
        self.errors: list[str] = cap_errors(errors or [])
        self.ids: dict[str, str] = dict(ids) if ids else {}
        self.original_size = original_size
        self.code = code

    def __repr__(self) -> str:
        return f"MessageRefused(code={self.code!r}, reason={self.reason!r}, errors={self.errors!r})"


class InvalidEvent(ValueError):
    """An event the engine built does not match its model: a bug, reported without the event's values."""

    def __init__(self, event_type: object, errors: list[str]) -> None:
        super().__init__(f"event {event_type!s:.80} does not match the contract: " + "; ".join(errors))
        self.errors = errors


def _loc_part(part: str | int) -> str:
    text = str(part)
    if len(text) > _MAX_LOC_PART:
        text = text[:_MAX_LOC_PART] + "…"
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text


def field_path(loc: tuple[str | int, ...], prefix: str = "") -> str:
    """Dotted path of a pydantic error location ("child.date_of_birth", "missing.2")."""
    parts = [_loc_part(p) for p in loc]
    if prefix:
        parts.insert(0, prefix)
    return ".".join(parts)


def _message(error: dict) -> str:
    msg: str = error["msg"]
    # Messages of PydanticCustomError are ours; "Value error, " is noise from plain ValueErrors.
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    # Belt and braces: pydantic's own messages do not quote the input, but a future version or a
    # custom validator might; a message that contains a (non-trivial) input string is replaced.
    value = error.get("input")
    if isinstance(value, str) and len(value) >= _MIN_ECHO_LEN and value in msg:
        msg = f"invalid value ({error['type']})"
    return msg


def cap_reason(reason: str, limit: int = MAX_REASON_CHARS) -> str:
    """At most `limit` characters, cut with an ellipsis: the contract's bound on `reason`."""
    return reason if len(reason) <= limit else reason[:limit - 1] + "…"


def cap_errors(errors, limit: int = MAX_ERRORS) -> list[str]:
    """At most `limit` entries, then one "and N more"; each entry cut to a readable line.

    A list already capped (`limit` entries and its own "and N more", as FieldErrors makes) is kept:
    its count covers errors that were never rendered.
    """
    errors = list(errors)
    if len(errors) == limit + 1 and _AND_MORE.fullmatch(errors[-1]):
        errors, more = errors[:limit], int(_AND_MORE.fullmatch(errors[-1]).group(1))
    else:
        errors, more = errors[:limit], max(len(errors) - limit, 0)
    lines = [e if len(e) <= _MAX_ERROR_LINE else e[:_MAX_ERROR_LINE - 1] + "…" for e in errors]
    return lines + [f"and {more} more"] if more else lines


class FieldErrors:
    """A ValidationError reduced to what a refusal needs, in time linear in the number of errors.

    Only the first MAX_ERRORS errors are rendered (and checked for echoed input); the rest are
    counted, and their distinct locations counted with a set, so 80,000 unknown keys cost a pass
    over pydantic's list and no more.
    """

    def __init__(self, exc: ValidationError, prefix: str = "", limit: int = MAX_ERRORS) -> None:
        # include_input=True only so _message can check it is not echoed; it is not kept.
        errors = exc.errors(include_url=False, include_context=False, include_input=True)
        self.total = len(errors)
        self.items = [(field_path(e["loc"], prefix), _message(e)) for e in errors[:limit]]
        # loc tuples hash in C; the paths of the rest are never rendered.
        self.distinct_paths = len({e["loc"] for e in errors})
        self.first_paths = error_paths_of(self.items)

    def lines(self) -> list[str]:
        lines = render(self.items)
        if self.total > len(self.items):
            lines.append(f"and {self.total - len(self.items)} more")
        return lines


def safe_error_items(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(path, message) for each problem, never the input value; path is "" for the whole message."""
    items = []
    # include_input=True only so _message can check it is not echoed; it is not returned.
    for error in exc.errors(include_url=False, include_context=False, include_input=True):
        items.append((field_path(error["loc"], prefix), _message(error)))
    return items


def render(items: list[tuple[str, str]]) -> list[str]:
    """The "path: message" lines of MessageRefused.errors."""
    return [f"{path}: {msg}" if path else msg for path, msg in items]


def safe_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    """One "path: message" line per problem, never the input value."""
    return render(safe_error_items(exc, prefix))


def error_paths_of(items: list[tuple[str, str]]) -> list[str]:
    """The distinct field paths of some errors, in order, for a reason sentence.

    A dict keeps first-seen order with O(1) membership: the list search it replaces made 80,000
    unknown keys take 40 seconds.
    """
    return list(dict.fromkeys(path or "(whole message)" for path, _ in items))
