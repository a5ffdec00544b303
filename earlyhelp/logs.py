"""structlog set-up: one JSON object per line, never a child's or family's personal details.

Callers log ids, states, outcomes and durations only. As a second line of defence the
`_drop_personal_keys` processor removes any key that names personal data, so a careless
`log.info(..., child=...)` cannot leak a name into the logs.

Secrets and database text: every string logged (ours and the libraries' through the standard logging
module) has the passwords in its URLs masked (earlyhelp.secrets). An exception is logged as its type,
its traceback's frames and, for a database error, its SQLSTATE (or SQLite's error name): never its
message, which for SQLAlchemy holds the SQL and its parameters (a child's name in a refused body, a
dead-letter copy's headers) and for PostgreSQL a DETAIL line quoting the offending value.
"""
from __future__ import annotations

import json
import logging
import re
import sqlite3
import sys
import traceback

import orjson
import structlog
from sqlalchemy import exc as sa_exc

from earlyhelp.secrets import mask_secrets

PERSONAL_KEYS = frozenset(
    {
        "child", "given_name", "family_name", "date_of_birth", "expected_date_of_birth", "postcode",
        "nhs_number", "upn", "reason_text", "child_voice", "support_already_offered", "intended_outcome",
        "plan_summary", "contact_name", "contact_email", "contact_phone", "body", "fields_values",
    }
)


def _drop_personal_keys(_logger, _name, event_dict):
    for key in PERSONAL_KEYS.intersection(event_dict):
        event_dict[key] = "[withheld]"
    return event_dict


# What SQLAlchemy appends to a database error's message, and PostgreSQL's DETAIL line that quotes values.
_SQL_TEXT = re.compile(r"\s*\[SQL: .*", re.DOTALL)
_DETAIL = re.compile(r"\n(?:DETAIL|HINT|CONTEXT|LINE \d+):[^\n]*")


def _database_error(error: BaseException) -> BaseException | None:
    """The driver's error inside `error` if it is a database error, else None."""
    if isinstance(error, sa_exc.StatementError):
        return error.orig if isinstance(error.orig, BaseException) else error
    if isinstance(error, sqlite3.Error):
        return error
    module = type(error).__module__
    if module.startswith("psycopg"):
        return error
    return None


def sqlstate(error: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE (e.g. 23505), or SQLite's error name (e.g. SQLITE_CONSTRAINT_UNIQUE)."""
    orig = _database_error(error)
    if orig is None:
        return None
    return getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)


def describe_error(error: BaseException) -> str:
    """One line for a log or a message: the type, and the SQLSTATE for a database error; for any other
    error its message too, with passwords masked and any SQL text cut off."""
    name = type(error).__name__
    orig = _database_error(error)
    if orig is not None:
        inner = "" if orig is error else f" from {type(orig).__module__}.{type(orig).__name__}"
        code = sqlstate(error)
        return f"{name}{inner}" + (f" (SQLSTATE {code})" if code else "")
    text = scrub(str(error))
    return f"{name}: {text}" if text else name


def scrub(text: str) -> str:
    """Free text as it may be logged: passwords masked, SQL statements and DETAIL lines removed."""
    if "[SQL: " in text:
        text = _SQL_TEXT.sub(" [SQL withheld]", text)
    if "\n" in text:
        text = _DETAIL.sub("", text)
    return mask_secrets(text)


def format_exception(error: BaseException) -> str:
    """A traceback (frames, most recent call last, causes first) whose messages are describe_error's."""
    chain, seen, current = [], set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = []
    for n, exc in enumerate(reversed(chain)):
        if n:
            parts.append("\nThe above exception led to the following one:\n\n")
        if exc.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n" + "".join(traceback.format_tb(exc.__traceback__)))
        parts.append(describe_error(exc) + "\n")
    return "".join(parts).rstrip("\n")


def _exception_info(exc_info) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1]
    return sys.exc_info()[1] if exc_info else None


def _render_exceptions(_logger, _name, event_dict):
    """In place of structlog's format_exc_info: type, SQLSTATE and frames, never a message with SQL."""
    error = _exception_info(event_dict.pop("exc_info", None))
    if error is not None:
        event_dict["exception"] = format_exception(error)
        event_dict.setdefault("exception_type", type(error).__name__)
        code = sqlstate(error)
        if code:
            event_dict.setdefault("sqlstate", code)
    return event_dict


def _scrub_value(value):
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, BaseException):
        return describe_error(value)
    if isinstance(value, (list, tuple)):
        return [_scrub_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    return value


def _scrub_values(_logger, _name, event_dict):
    return {key: _scrub_value(value) for key, value in event_dict.items()}


class SafeFormatter(logging.Formatter):
    """For the libraries' own log records (kombu, pika, SQLAlchemy): the same masking as ours."""

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return format_exception(ei[1]) if ei and ei[1] is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def _json_line(event_dict, **dumps_kw) -> str:
    """orjson where it gives what json.dumps would (ASCII only, string keys, 64-bit integers): a line per
    message handled, and orjson takes a twentieth of the time. Anything else goes the standard way."""
    try:
        line = orjson.dumps(event_dict, default=dumps_kw.get("default")).decode()
        if line.isascii():
            return line
    except (TypeError, orjson.JSONEncodeError):
        pass
    return json.dumps(event_dict, separators=(",", ":"), **dumps_kw)


def configure_logging(level: str = "INFO", stream=None) -> None:
    """JSON lines to stderr (or `stream`); safe to call more than once."""
    logging.basicConfig(format="%(message)s", stream=stream or sys.stderr, level=level, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SafeFormatter("%(message)s"))
    # transitions logs every state entry at INFO: one line per message handled is ours to write.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    # Alembic narrates every plugin and step at INFO in plain text; `migrate` reports the revision itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_personal_keys,
            _render_exceptions,
            _scrub_values,
            structlog.processors.JSONRenderer(serializer=_json_line),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str):
    return structlog.get_logger(name)
