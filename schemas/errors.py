"""Refusals: the exception the engine turns into a rejection event, and safe rendering of pydantic errors."""

from __future__ import annotations

from pydantic import ValidationError

# A loc segment is a field name the sender chose; long or unprintable ones are cut so a
# refusal stays readable and cannot smuggle the message's content into logs.
_MAX_LOC_PART = 64
# Inputs shorter than this are not searched for in messages: "1" or "a" would match
# harmless text such as "at least 1 character".
_MIN_ECHO_LEN = 4


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
        super().__init__(reason)
        self.reason = reason
        self.errors: list[str] = list(errors) if errors else []
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
    """The distinct field paths of some errors, in order, for a reason sentence."""
    seen: list[str] = []
    for path, _ in items:
        path = path or "(whole message)"
        if path not in seen:
            seen.append(path)
    return seen
