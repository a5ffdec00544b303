"""A child's record as the law expects: `disclosures`, `subject-access`, `erase`, `retention`, `access-log`.

The work is in earlyhelp.records; these functions parse options, call it and print. Bad input (an
unknown case, a malformed NHS number or UPN, a --dob that is not a date, a retention file with errors,
no --reason for a view of personal data) gets one line naming the problem and exit code 2, and changes
nothing. docs/operating.md, "Data protection", is the guide.
"""
from __future__ import annotations

import json
import sys
from datetime import date, datetime, timezone

import click

from earlyhelp.clock import utc_now
from earlyhelp.printing import escape, utc_minute


class BadInput(click.ClickException):
    """One line, exit code 2: the operator's input is wrong and nothing was changed."""

    exit_code = 2


def _engine(settings):
    from earlyhelp.persistence.database import make_engine

    return make_engine(settings.database_url)


def _key(settings) -> bytes:
    from earlyhelp.records.pseudonyms import KeyProblem, pseudonym_key

    try:
        return pseudonym_key(settings.database_url)
    except KeyProblem as problem:
        raise BadInput(str(problem)) from None


def _reason(reason: str | None, view: str) -> str:
    from earlyhelp.records.access_log import NoReason, checked_reason

    try:
        return checked_reason(reason, view)
    except NoReason as missing:
        raise BadInput(str(missing)) from None


def log_view(settings, *, command: str, shown: str, reason: str, case_ids, at: datetime | None = None) -> None:
    """Append the view to the access log before anything is shown (a view that cannot be logged is not shown)."""
    from earlyhelp.records.access_log import record_view

    engine = _engine(settings)
    try:
        with engine.begin() as conn:
            record_view(conn, command=command, shown=shown, reason=reason, case_ids=case_ids, at=at or utc_now())
    finally:
        engine.dispose()


def require_reason(reason: str | None, view: str) -> str:
    """For the other views of personal data (case, watch, dead-letters show): --reason or exit 2."""
    return _reason(reason, view)


def _known_case(conn, case_id: str) -> None:
    from sqlalchemy import select

    from earlyhelp.persistence.tables import cases

    if conn.execute(select(cases.c.case_id).where(cases.c.case_id == case_id)).first() is None:
        raise BadInput(f"no case {escape(case_id)}: check the case id (earlyhelp cases lists them)")


def _json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


# -- disclosures ------------------------------------------------------------------------------------------
@click.command()
@click.argument("case_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def disclosures(settings, case_id, as_json) -> None:
    """What was disclosed about a case's child, to whom and on what basis (field paths, never values)."""
    from earlyhelp.records.disclosures import case_disclosures

    from sqlalchemy import select

    from earlyhelp.persistence.tables import case_history
    from earlyhelp.records.erasure import ERASED_EVENT

    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            _known_case(conn, case_id)
            rows = case_disclosures(conn, case_id)
            erased = conn.execute(select(case_history.c.occurred_at, case_history.c.data).where(
                case_history.c.case_id == case_id, case_history.c.event_type == ERASED_EVENT)).first()
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=_json_default))
        return
    for r in rows:
        click.echo(f"{utc_minute(r['disclosed_at'])}  {r['event_type']:<20} to {escape(r['exchange'])} "
                   f"{escape(r['routing_key'])}  basis {r['basis']}\n    {', '.join(r['field_paths'])}")
    click.echo(f"{len(rows)} disclosure{'s' if len(rows) != 1 else ''}")
    if erased is not None:  # the log is kept as long as the details: erasure took both
        removed = ((erased.data or {}).get("removed") or {}).get("disclosure_rows", 0)
        click.echo(f"(the case was erased {utc_minute(erased.occurred_at)}: its {removed} disclosure "
                   f"row{'s' if removed != 1 else ''} went with its details)")


# -- subject access ---------------------------------------------------------------------------------------
@click.command(name="subject-access")
@click.option("--nhs-number", default=None, help="The child's NHS number (10 digits).")
@click.option("--upn", default=None, help="The child's Unique Pupil Number.")
@click.option("--name", default=None, help='The child\'s given and family name, e.g. "Sam Taylor" (with --dob).')
@click.option("--dob", default=None, help="The child's date of birth (or expected date), YYYY-MM-DD (with --name).")
@click.option("--reason", default=None, help="Why (the request's reference): recorded in the access log.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
@click.option("--format", "fmt", type=click.Choice(["json", "html"]), default="json", show_default=True)
@click.pass_obj
def subject_access(settings, nhs_number, upn, name, dob, reason, output, fmt) -> None:
    """Every case of a child, found by NHS number, UPN, or name and date of birth (through keyed hashes)."""
    from earlyhelp.records.access_log import operator_name
    from earlyhelp.records.subject_access import (
        BadIdentifier, find_cases, search_digest, subject_access_document, to_html, to_json,
    )

    given = [n for n, v in (("--nhs-number", nhs_number), ("--upn", upn), ("--name", name)) if v is not None]
    if len(given) != 1 or (dob is not None and name is None):
        raise BadInput("give one of --nhs-number, --upn, or --name with --dob")
    if name is not None and dob is None:
        raise BadInput("--name needs --dob (the date of birth, or expected date, YYYY-MM-DD)")
    reason = _reason(reason, "subject-access")
    try:
        kind, value = search_digest(_key(settings), nhs_number=nhs_number, upn=upn, name=name, dob=dob)
    except BadIdentifier as problem:
        raise BadInput(str(problem)) from None
    now, by = utc_now(), operator_name()
    from earlyhelp.records.access_log import record_view

    engine = _engine(settings)
    try:
        with engine.begin() as conn:  # the view is logged (committed) before anything is read for it
            case_ids = find_cases(conn, kind, value)
            record_view(conn, command="subject-access", shown=f"every case of a child found by {kind}: details, "
                        "history, disclosures, clocks", reason=reason, case_ids=case_ids, at=now, operator=by)
        document = subject_access_document(engine, case_ids, by, reason, now)
    finally:
        engine.dispose()
    text = to_html(document) if fmt == "html" else to_json(document)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        click.echo(f"wrote {output}: {len(case_ids)} case{'s' if len(case_ids) != 1 else ''}", err=True)
    else:
        click.echo(text, nl=False)


# -- erase ------------------------------------------------------------------------------------------------
def erase_one(settings, case_id: str, reason: str, now: datetime) -> tuple[dict, str | None]:
    """Erase one case: the broker's dead-letter copies first (while the details still say what names the
    case), then the database in one transaction. Returns the counts and a note when the broker was not swept."""
    from earlyhelp.records.access_log import operator_name
    from earlyhelp.records.erasure import (
        CaseStillOpen, UnknownCase, dead_letter_queue_class, erase_case, match_terms, sweep_dead_letter_queue,
    )

    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            try:
                terms = match_terms(conn, case_id)
            except UnknownCase:
                raise BadInput(f"no case {escape(case_id)}: check the case id (earlyhelp cases lists them)") from None
            from earlyhelp.persistence.tables import cases
            from sqlalchemy import select

            state = conn.execute(select(cases.c.state).where(cases.c.case_id == case_id)).scalar()
        if state != "closed":
            raise BadInput(f"case {escape(case_id)} is open ({state}): close it first (a close command), then erase")
        removed, note = None, None
        if not settings.is_memory_broker:  # memory:// lives in one process: no dead-letter queue to sweep
            try:
                queue_class = dead_letter_queue_class()
                engine_users = {settings.engine_user} if settings.engine_user else None
                with queue_class(settings.broker_url, engine_users, settings.broker_ca_file) as queue:
                    removed = sweep_dead_letter_queue(queue, terms)
            except Exception as error:  # noqa: BLE001 - unreachable, refused: the database is erased anyway
                note = (f"earlyhelp.dead-letter not swept ({type(error).__name__}): run erase again when "
                        "RabbitMQ is reachable")
        try:
            with engine.begin() as conn:
                counts = erase_case(conn, case_id, reason, operator_name(), now, removed)
        except UnknownCase:
            raise BadInput(f"no case {escape(case_id)}") from None
        except CaseStillOpen as open_state:
            raise BadInput(f"case {escape(case_id)} is open ({open_state}): close it first, then erase") from None
    finally:
        engine.dispose()
    return counts, note


@click.command()
@click.argument("case_id")
@click.option("--reason", default=None, help="The erasure request or retention decision (no personal data: "
              "it is kept in the case's history).")
@click.pass_obj
def erase(settings, case_id, reason) -> None:
    """Remove a closed case's personal data everywhere the engine keeps it; keep the statistics."""
    reason = (reason or "").strip()
    if not reason:
        raise BadInput("erase needs --reason (the request or decision it carries out)")
    counts, note = erase_one(settings, case_id, reason, utc_now())
    click.echo(_erased_line(case_id, counts))
    if note:
        click.echo(note, err=True)
        sys.exit(1)


def _erased_line(case_id: str, counts: dict) -> str:
    if counts.get("already_erased"):
        head = f"case {case_id}: already erased; swept again"
    else:
        head = f"case {case_id}: erased"
    parts = [f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if k != "already_erased"]
    return f"{head} ({', '.join(parts)}); case.erased in its history, statistics kept"


# -- retention --------------------------------------------------------------------------------------------
@click.command()
@click.option("--apply", "apply_", is_flag=True, help="Erase the cases listed (as erase does, one by one).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def retention(settings, apply_, as_json) -> None:
    """Closed cases past the retention policy (EARLYHELP_RETENTION, else the shipped default)."""
    from earlyhelp.records.retention import RetentionError, load_policy, past_retention

    try:
        policy = load_policy()
    except RetentionError as problem:
        raise BadInput(str(problem)) from None
    now = utc_now()
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            due = past_retention(conn, policy, now)
    finally:
        engine.dispose()
    if as_json and not apply_:
        click.echo(json.dumps({"policy": policy.source, "due": due}, indent=2, default=_json_default))
        return
    click.echo(f"policy: {policy.source} (until age {policy.until_age}; "
               f"{policy.years_after_received_without_birth_date} years after received without a date of birth)")
    notes = 0
    for case in due:
        line = f"{case['case_id']}  received {utc_minute(case['received_at'])}  kept until {case['kept_until']}"
        if apply_:
            counts, note = erase_one(settings, case["case_id"], f"retention policy ({policy.source}): kept "
                                     f"until {case['kept_until']}", now)
            line += "  erased"
            if note:
                notes += 1
                line += f" ({note})"
        click.echo(line)
    click.echo(f"{len(due)} closed case{'s' if len(due) != 1 else ''} past the policy"
               + (" erased" if apply_ else (": add --apply to erase them" if due else "")))
    if notes:
        sys.exit(1)


# -- access log -------------------------------------------------------------------------------------------
@click.command(name="access-log")
@click.option("--case", "case_id", default=None, help="Only views of this case.")
@click.option("--since", default=None, help="Only views on or after this day (YYYY-MM-DD, UTC).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def access_log(settings, case_id, since, as_json) -> None:
    """Who saw personal data, when, what and why (append-only; no command edits it)."""
    from earlyhelp.records.access_log import read_log

    start = None
    if since is not None:
        try:
            start = datetime.combine(date.fromisoformat(since.strip()), datetime.min.time(), tzinfo=timezone.utc)
        except ValueError:
            raise BadInput("--since: not a date like 2026-11-01") from None
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            rows = read_log(conn, case_id, start)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=_json_default))
        return
    for r in rows:
        click.echo(f"{utc_minute(r['at'])}  {escape(r['operator'])}  {r['command']}  case {r['case_id'] or '-'}\n"
                   f"    shown: {escape(r['shown'])}\n    why: {escape(r['reason'])}")
    click.echo(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")


COMMANDS = [disclosures, subject_access, erase, retention, access_log]
