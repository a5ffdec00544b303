"""Hostile-input checks for a delivery's raw bytes, in order, before pydantic sees them; then strict validation."""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import FieldErrors, MessageRefused, error_paths_of, field_path, render

MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32
# Arrays and objects in one body. No valid message has more than a few dozen (the models are closed and
# their lists short), while building hundreds of thousands of them costs json.loads and pydantic about a
# second per MiB: a body with more is refused before either parses it.
MAX_CONTAINERS = 1000
# Object keys in one body, for the same reason: 80,000 unknown keys would each become a pydantic error
# (a dict of its own, ~0.2 s for all), where the widest valid message has a few dozen keys.
MAX_KEYS = 2000
KNOWN_SCHEMA_VERSIONS = (1,)
# I-JSON (RFC 7493): integers a double can hold exactly, so every consumer reads the same number.
MAX_SAFE_INTEGER = 2**53 - 1
# kombu passes its charset here ("utf-8"); anything else is compression we refuse to unpack.
_PLAIN_ENCODINGS = frozenset({"", "identity", "utf-8", "utf8"})
_ID_LIMIT = 200

_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_STEP = [1 if byte in b"[{" else -1 for byte in range(256)]
# After escapes are gone, a whole string (an unterminated one runs to the end), or a run of brackets
# outside strings. Walked with finditer, never re.sub: sub over a body of many short strings builds a
# list of pieces ~40 times the body's size (40 MiB for a hostile 1 MiB body).
_TOKEN = re.compile(rb'"[^"]*(?:"|\Z)|[^"]+')

ModelT = TypeVar("ModelT", bound=BaseModel)


class _Refusal(ValueError):
    """Raised from inside json.loads hooks; carries the problem without the value."""


def _printable_word(value: str, limit: int = 40) -> str | None:
    # A header value may be named in a reason only when short and plain (it is not personal data).
    if len(value) <= limit and value.isascii() and value.isprintable():
        return value
    return None


def check_encoding(content_encoding: str | None) -> None:
    if content_encoding is None or content_encoding.strip().lower() in _PLAIN_ENCODINGS:
        return
    word = _printable_word(content_encoding)
    named = f" {word!r}" if word else ""
    raise MessageRefused(
        f"The content encoding{named} is not accepted; send the body as plain UTF-8 JSON without compression.",
        ["content_encoding: only plain UTF-8 is accepted"],
        code="content_encoding",
    )


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when arrays/objects nest deeper than `limit`: a linear scan that ignores strings, in bounded memory."""
    return _structure(body, limit)[0]


def _structure(body: bytes, limit: int = MAX_DEPTH) -> tuple[bool, int]:
    """(nests deeper than `limit`, how many arrays and objects), brackets inside strings ignored."""
    opened = body.count(b"[") + body.count(b"{")
    if opened <= limit:
        return False, opened  # the common case: too few brackets to be too deep at all
    # Escaped backslashes out first, then escaped quotes: every quote left opens or closes a string.
    # Then only brackets and quotes are kept; all of this at C speed, each step no larger than the body.
    reduced = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    # Two adjacent quotes are an empty string or the seam between two strings: dropping them keeps every
    # bracket outside strings where it is, and leaves few tokens for the loop below (most strings hold
    # no bracket at all).
    reduced = reduced.replace(b'""', b"")
    depth, containers = 0, 0
    for token in _TOKEN.finditer(reduced):
        run = token.group()
        if run[0] == 0x22:  # a string: the brackets inside it do not nest
            continue
        if any(level > limit for level in accumulate(map(_STEP.__getitem__, run), initial=depth)):
            return True, containers + run.count(b"[") + run.count(b"{")  # stops at the first level past the limit
        opens = run.count(b"[") + run.count(b"{")
        containers += opens
        depth += opens - run.count(b"]") - run.count(b"}")
    return False, containers


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Refusal("an object has the same key twice")
    return result


def _no_constant(name: str) -> Any:
    raise _Refusal("NaN and Infinity are not JSON numbers")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise _Refusal("a number is too large")
    return value


def _safe_int(literal: str) -> int:
    # Length first: int() of thousands of digits is slow, and refused by Python past 4300 anyway.
    if len(literal) > 17 or abs(value := int(literal)) > MAX_SAFE_INTEGER:
        raise _Refusal("an integer is outside the range -(2**53-1)..2**53-1")
    return value


def _text_problem(document: Any, path: str = "") -> str | None:
    """Where a string (or key) is not storable text: a lone surrogate, or NUL (PostgreSQL refuses it)."""
    if isinstance(document, str):
        if "\x00" in document:
            return f"{path or 'body'}: text contains a NUL character"
        try:
            document.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path or 'body'}: text contains an unpaired surrogate (\\ud800-\\udfff)"
        return None
    if isinstance(document, dict):
        for key, value in document.items():
            child = field_path((key,), path)
            problem = _text_problem(key, child) or _text_problem(value, child)
            if problem:
                return problem
    elif isinstance(document, list):
        for index, value in enumerate(document):
            problem = _text_problem(value, f"{path}.{index}" if path else str(index))
            if problem:
                return problem
    return None


def read_ids(document: Any, names: tuple[str, ...]) -> dict[str, str]:
    """The message's own ids, when readable: strings of at most 200 characters that are valid text."""
    ids: dict[str, str] = {}
    if not isinstance(document, dict):
        return ids
    for name in names:
        value = document.get(name)
        if isinstance(value, str) and 0 < len(value) <= _ID_LIMIT and "\x00" not in value:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                continue
            ids[name] = value
    return ids


def decode_message(
    body: bytes, content_encoding: str | None, what: str, id_names: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The checks every inbound body passes, in the contract's order; returns the parsed object and its ids."""
    check_encoding(content_encoding)
    if not isinstance(body, bytes):
        body = bytes(body)  # bytearray / memoryview from a client library
    if len(body) > MAX_BODY_BYTES:
        raise MessageRefused(
            f"The {what} is larger than 1 MiB; send a smaller body.",
            [f"body: {len(body)} bytes is over the limit of {MAX_BODY_BYTES}"],
            original_size=len(body),
            code="too_large",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageRefused(
            f"The {what} is not valid UTF-8; send it as UTF-8 JSON.",
            [f"body: invalid UTF-8 at byte {exc.start}"],
            code="not_utf8",
        ) from None
    deep, containers = _structure(body)
    if deep:
        raise MessageRefused(
            f"The {what} nests arrays or objects more than {MAX_DEPTH} deep; send a flat JSON object.",
            [f"body: nesting deeper than {MAX_DEPTH}"],
            code="too_deep",
        )
    if containers > MAX_CONTAINERS:
        raise MessageRefused(
            f"The {what} holds more than {MAX_CONTAINERS} arrays and objects; send only the {what}'s fields.",
            [f"body: {containers} arrays and objects, over the limit of {MAX_CONTAINERS}"],
            code="too_many_values",
        )
    try:
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_safe_int,
        )
    except _Refusal as exc:
        raise MessageRefused(
            f"The {what} is not acceptable JSON ({exc}); correct it and send it again.",
            [f"body: {exc}"],
            code="invalid_json",
        ) from None
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError's text names a position, never the content around it.
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not parseable"
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise MessageRefused(
            f"The {what} is not valid JSON; send a JSON object.",
            [f"body: {detail}{where}"],
            code="invalid_json",
        ) from None
    ids = read_ids(document, id_names)
    # Only an escape can make a lone surrogate or NUL (raw ones fail the UTF-8 and JSON checks above).
    if b"\\u" in body:
        problem = _text_problem(document)
        if problem:
            raise MessageRefused(
                f"The {what} contains text that is not valid Unicode; correct it and send it again.",
                [problem],
                ids=ids,
                code="invalid_text",
            )
    if _more_keys_than(document, MAX_KEYS):
        raise MessageRefused(
            f"The {what} has more than {MAX_KEYS} fields in all; send only the {what}'s own fields.",
            [f"body: more than {MAX_KEYS} object keys"],
            ids=ids,
            code="too_many_values",
        )
    if not isinstance(document, dict):
        raise MessageRefused(
            f"The {what} must be a JSON object; send an object with schema_version and the {what}'s fields.",
            [f"body: a JSON {_json_type(document)}, not an object"],
            code="not_an_object",
        )
    return document, ids


def _more_keys_than(document: Any, limit: int) -> bool:
    """True when the objects in `document` hold more than `limit` keys together; stops once past it.
    Linear, and short: the body has at most MAX_CONTAINERS objects and arrays by now."""
    total, stack = 0, [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            total += len(value)
            if total > limit:
                return True
            stack.extend(v for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, (dict, list)))
    return False


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def check_schema_version(document: dict[str, Any], what: str, ids: dict[str, str]) -> None:
    known = ", ".join(str(v) for v in KNOWN_SCHEMA_VERSIONS)
    if "schema_version" not in document:
        raise MessageRefused(
            f"The {what} has no schema_version; add \"schema_version\": 1 (known versions: {known}).",
            ["schema_version: Field required"],
            ids=ids,
            code="unknown_version",
        )
    version = document["schema_version"]
    if type(version) is not int:  # noqa: E721 - bool and float are not versions
        raise MessageRefused(
            f"The {what}'s schema_version must be a JSON integer; known versions: {known}.",
            ["schema_version: Input should be an integer"],
            ids=ids,
            code="unknown_version",
        )
    if version not in KNOWN_SCHEMA_VERSIONS:
        raise MessageRefused(
            f"The {what}'s schema_version {version} is not known to this engine; known versions: {known}.",
            [f"schema_version: unknown version (known: {known})"],
            ids=ids,
            code="unknown_version",
        )


def validate_body(
    model: type[ModelT],
    body: bytes,
    document: dict[str, Any],
    ids: dict[str, str],
    what: str,
    context: dict[str, Any],
) -> ModelT:
    """schema_version, then the model in strict mode (no coercion: "true" is not a boolean)."""
    now = context.get("now")
    if now is not None and now.tzinfo is None:
        raise TypeError("now must be a timezone-aware datetime")
    check_schema_version(document, what, ids)
    try:
        return model.model_validate_json(body, strict=True, context=context)
    except ValidationError as exc:
        found = FieldErrors(exc)
        raise refused_for_fields(what, found.items, ids, total=found.total, distinct=found.distinct_paths) from None


# A reason names this many paths and counts the rest, so it stays one readable sentence.
_PATHS_IN_REASON = 10
_PATH_IN_REASON_CHARS = 100


def refused_for_fields(what: str, items: list[tuple[str, str]], ids: dict[str, str], *,
                       total: int | None = None, distinct: int | None = None) -> MessageRefused:
    """The refusal for field errors. `items` may be only the first few of `total` errors, over
    `distinct` paths (FieldErrors): the reason and errors stay within the contract's bounds either way."""
    paths = error_paths_of(items)
    count = max(distinct or 0, len(paths))
    shown = [p if len(p) <= _PATH_IN_REASON_CHARS else p[:_PATH_IN_REASON_CHARS - 1] + "…"
             for p in paths[:_PATHS_IN_REASON]]
    listed = ", ".join(shown) + (f" and {count - len(shown)} more" if count > len(shown) else "")
    noun = "field is" if count == 1 else "fields are"
    lines = render(items)
    if total is not None and total > len(items):
        lines.append(f"and {total - len(items)} more")
    return MessageRefused(
        f"The {what} was refused because {count} {noun} missing or invalid "
        f"({listed}); correct {'it' if count == 1 else 'them'} and send it again.",
        lines,
        ids=ids,
        code="invalid_fields",
    )
