"""The retention policy: how long a closed case's personal data is kept, with "now" always passed in.

`EARLYHELP_RETENTION` names a TOML file; the shipped default (records/data/retention.toml) keeps a
closed case until the child's 25th birthday (the expected date of birth for an unborn child), or 25
years after `received_at` where no date is known. `earlyhelp retention` lists the closed cases past it;
`--apply` erases them (records/erasure.py). A case already erased is not listed again.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources import files
from pathlib import Path

from sqlalchemy import select

RETENTION_VARIABLE = "EARLYHELP_RETENTION"
_KEYS = ("until_age", "years_after_received_without_birth_date")


class RetentionError(ValueError):
    """The policy file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class RetentionPolicy:
    until_age: int = 25
    years_after_received_without_birth_date: int = 25
    source: str = "the shipped default"


def parse_policy(text: str, where: str) -> RetentionPolicy:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RetentionError(f"{where}: not valid TOML ({error})") from None
    unknown = sorted(set(document) - {"retention"})
    if unknown:
        raise RetentionError(f"{where}: {unknown[0]}: unknown table; the policy is under [retention]")
    table = document.get("retention")
    if not isinstance(table, dict):
        raise RetentionError(f"{where}: retention: missing; give [retention] with {' and '.join(_KEYS)}")
    for key in sorted(table):
        if key not in _KEYS:
            raise RetentionError(f"{where}: retention.{key}: unknown key; known keys are {', '.join(_KEYS)}")
    values = {}
    for key in _KEYS:
        if key not in table:
            raise RetentionError(f"{where}: retention.{key}: missing")
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 150:
            raise RetentionError(f"{where}: retention.{key}: must be a whole number of years from 1 to 150")
        values[key] = value
    return RetentionPolicy(**values, source=where)


def load_policy(path: str | os.PathLike | None = None) -> RetentionPolicy:
    """The policy in `path`, else in EARLYHELP_RETENTION, else the shipped default."""
    if path is None:
        path = os.environ.get(RETENTION_VARIABLE) or None
    if path is None:
        default = files("earlyhelp.records") / "data" / "retention.toml"
        return parse_policy(default.read_text(encoding="utf-8"), "the shipped default")
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RetentionError(f"{where}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    return parse_policy(text, where)


def _plus_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year that has none: the day after, 1 March
        return date(day.year + years, 3, 1)


def keep_until(policy: RetentionPolicy, born: date | None, received_at: datetime) -> date:
    """The first day the case's personal data is no longer kept."""
    if born is not None:
        return _plus_years(born, policy.until_age)
    return _plus_years(received_at.date(), policy.years_after_received_without_birth_date)


def is_past(policy: RetentionPolicy, born: date | None, received_at: datetime, now: datetime) -> bool:
    return now.date() >= keep_until(policy, born, received_at)


def birth_date(notification: dict | None) -> date | None:
    child = (notification or {}).get("child") or {}
    value = child.get("date_of_birth") or child.get("expected_date_of_birth")
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def past_retention(conn, policy: RetentionPolicy, now: datetime) -> list[dict]:
    """Closed cases whose details are still kept and whose retention has ended, oldest first."""
    from earlyhelp.persistence.tables import case_details, cases

    query = (select(cases.c.case_id, cases.c.received_at, case_details.c.notification)
             .join(case_details, case_details.c.case_id == cases.c.case_id)
             .where(cases.c.state == "closed").order_by(cases.c.received_at, cases.c.case_id))
    due = []
    for row in conn.execute(query):
        until = keep_until(policy, birth_date(row.notification), row.received_at)
        if now.date() >= until:
            due.append({"case_id": row.case_id, "received_at": row.received_at, "kept_until": until})
    return due
