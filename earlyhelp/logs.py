"""structlog set-up: one JSON object per line, never a child's or family's personal details.

Callers log ids, states, outcomes and durations only. As a second line of defence the
`_drop_personal_keys` processor removes any key that names personal data, so a careless
`log.info(..., child=...)` cannot leak a name into the logs.
"""
from __future__ import annotations

import logging
import sys

import structlog

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


def configure_logging(level: str = "INFO", stream=None) -> None:
    """JSON lines to stderr (or `stream`); safe to call more than once."""
    logging.basicConfig(format="%(message)s", stream=stream or sys.stderr, level=level, force=True)
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
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str):
    return structlog.get_logger(name)
