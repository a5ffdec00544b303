"""Operators' and managers' commands: `queues`, `dead-letters`, `cases`, `case`, `report`.

The work is in earlyhelp.reports (what is read and shown) and earlyhelp.operations (dead-letter replay
and purge, which change the broker); these functions only parse options, call them and print.
docs/operating.md is the guide to them.

Whatever came from a sender (ids, actors, teams, districts, reasons, headers, bodies) is printed
through earlyhelp.printing.escape, so a newline cannot fake a line and an escape sequence cannot
reach the terminal; --json output is escaped by json.dumps already.
"""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import date, timedelta

import click

from earlyhelp.clock import utc_now
from earlyhelp.printing import escape, table, utc_minute
from earlyhelp.schemas.routing import UNASSIGNED

MANAGEMENT_URL_HELP = "The RabbitMQ management API (http://user:pass@host:15672) for unacked counts and rates."


def _engine(settings):
    from earlyhelp.persistence.database import make_engine

    return make_engine(settings.database_url)


def _need_broker(settings) -> None:
    import logging

    # pika's chatter is not the operator's business, nor are its warnings and errors: each failure also
    # raises, and the command says it once, in one line (a refused permission, an unreachable broker).
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    if settings.is_memory_broker:
        raise click.ClickException("this command needs a RabbitMQ broker; memory:// lives in one process")


def _unreachable(error: Exception) -> click.ClickException:
    from earlyhelp.reports.broker_status import access_refused

    refused = access_refused(error)
    if refused:
        return _refused(refused)
    return click.ClickException(f"cannot reach RabbitMQ at the configured EARLYHELP_BROKER_URL "
                                f"({type(error).__name__})")


def _refused(words: str) -> click.ClickException:
    """One line (exit 1) for a broker user without the permission a command needs."""
    return click.ClickException(f"RabbitMQ refused this broker user: {words} (docs/operating.md, "
                                "\"Broker users and their permissions\", says what each command needs)")


# -- queues -------------------------------------------------------------------------------------------
@click.command()
@click.option("--check", is_flag=True, help="Exit 1 when dead letters wait or an engine queue has no consumer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--management-url", envvar="EARLYHELP_MANAGEMENT_URL", default=None, help=MANAGEMENT_URL_HELP)
@click.pass_obj
def queues(settings, check, as_json, management_url) -> None:
    """Every queue of the contract and the engine: ready, unacked, consumers, rates."""
    from earlyhelp.reports import broker_status

    _need_broker(settings)
    try:
        statuses, note = broker_status.queue_status(settings.broker_url, management_url, settings.broker_ca_file)
    except Exception as error:  # noqa: BLE001 - pika raises several kinds for "not there"
        raise _unreachable(error) from error
    problems = broker_status.check(statuses)
    if as_json:
        click.echo(json.dumps({"queues": [s.as_dict() for s in statuses], "note": note, "problems": problems},
                              indent=2))
    else:
        def cell(value, rate=False):
            if value is None:
                return "?" if not rate else "-"
            return f"{value:.1f}/s" if rate else str(value)

        rows = [("queue", "role", "ready", "unacked", "consumers", "publish", "deliver")]
        rows += [(s.name, s.role, cell(s.ready) if s.exists else "missing", cell(s.unacked), cell(s.consumers),
                  cell(s.publish_rate, True), cell(s.deliver_rate, True)) for s in statuses]
        for line in table(rows, left=2):
            click.echo(line)
        if note:
            click.echo(f"({escape(note)})")
        for problem in problems:
            click.echo(f"PROBLEM {escape(problem)}")
    if check:
        if problems:
            sys.exit(1)
        if not as_json:
            click.echo("OK: no dead letters waiting, every engine queue has a consumer")


# -- dead letters -------------------------------------------------------------------------------------
@click.group(name="dead-letters")
def dead_letters() -> None:
    """Refused messages in earlyhelp.dead-letter: list, show, replay, purge.

    Each copy has a stable id (12 hex digits; docs/operating.md says how it is made). Reading never
    removes or loses a copy; replay and purge remove only the copies they name.
    """


def _queue(settings, writes: bool = False):
    """A session on earlyhelp.dead-letter: read-only (reports) unless it `writes` (operations: replay, purge)."""
    if writes:
        from earlyhelp.operations.dead_letters import DeadLetterQueue as Session
    else:
        from earlyhelp.reports.dead_letters import DeadLetterReader as Session

    _need_broker(settings)
    engine_users = {settings.engine_user} if settings.engine_user else None
    try:
        return Session(settings.broker_url, engine_users, settings.broker_ca_file)
    except Exception as error:  # noqa: BLE001
        raise _unreachable(error) from None


@contextmanager
def _permission_refusals():
    """A refusal met while reading or replaying becomes one line; copies not yet removed go back."""
    from earlyhelp.reports.broker_status import AccessRefused

    try:
        yield
    except AccessRefused as refused:
        raise _refused(str(refused)) from None


@dead_letters.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", type=int, default=None, help="Read at most this many copies (oldest first).")
@click.pass_obj
def list_dead_letters(settings, as_json, limit) -> None:
    """Each refused copy: id, when, the reason, its original exchange and routing key."""
    with _permission_refusals(), _queue(settings) as queue:
        copies = queue.read_all(limit)
    summaries = [c.summary() for c in copies]
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
        return
    if not copies:
        click.echo("earlyhelp.dead-letter is empty")
        return
    for s in summaries:
        where = f"{s['original_exchange'] or '?'} {s['original_routing_key'] or '?'}"
        by = s["by"] if s["by"] != "sender" else "sender-made: its headers are not believed"
        click.echo(f"{s['id']}  {escape(s['refused_at'][:19] or '-')}  {escape(where)}  "
                   f"message_id={escape(s['message_id'] or '-')}  ({by})\n    {escape(s['reason'])}")
    click.echo(f"{len(copies)} cop{'y' if len(copies) == 1 else 'ies'}")


@dead_letters.command(name="show")
@click.argument("copy_id")
@click.option("--body", "show_body", is_flag=True, help="Print the body too (it can hold personal data).")
@click.option("--reason", default=None, help="Why you need to see the body (required with --body; logged).")
@click.pass_obj
def show_dead_letter(settings, copy_id, show_body, reason) -> None:
    """One copy's properties and headers; its body only with --body (and --reason, in the access log)."""
    from earlyhelp.reports.dead_letters import plain_headers, select

    from .records import log_view, require_reason

    reason = require_reason(reason, "dead-letters show --body") if show_body else None
    with _permission_refusals(), _queue(settings) as queue:
        copies = queue.read_all()
        (copy, *_), missing = select(copies, [copy_id]) if copies else ([None], [copy_id])
        if missing or copy is None:
            raise click.ClickException(f"no copy {escape(missing[0] if missing else copy_id)} in earlyhelp.dead-letter")
        click.echo(json.dumps(copy.summary(), indent=2))
        props = {k: v for k, v in vars(copy.properties).items() if v is not None and k != "headers"}
        click.echo("properties: " + json.dumps(plain_headers(props), sort_keys=True))
        believed = {"engine": "set by the engine", "broker": "x-death set by the broker (the destination is "
                    "taken from its queue, not its fields); the rest set by the sender, not believed"}
        click.echo(f"headers ({believed.get(copy.made_by, 'set by the sender, none believed')}): "
                   + json.dumps(plain_headers(copy.headers), indent=2, sort_keys=True))
        if show_body:
            from earlyhelp.records.access_log import cases_named_in

            log_view(settings, command="dead-letters show --body", shown=f"the body of dead-letter copy {copy.id}",
                     reason=reason, case_ids=cases_named_in(copy.body))
            click.echo("body:")
            click.echo(escape(copy.body.decode("utf-8", "replace")))
        else:
            click.echo(f"body: {len(copy.body)} bytes, hidden (it can hold personal data): add --body to print it")


@dead_letters.command(name="replay")
@click.argument("copy_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every copy present now.")
@click.pass_obj
def replay_dead_letters(settings, copy_ids, replay_all) -> None:
    """Republish copies to their original exchange and key; each is removed once the broker confirms it."""
    from earlyhelp.reports.dead_letters import select

    if bool(copy_ids) == replay_all:
        raise click.UsageError("name the copies to replay, or give --all")
    failed = 0
    with _permission_refusals(), _queue(settings, writes=True) as queue:
        copies = queue.read_all()
        chosen, missing = (copies, []) if replay_all else select(copies, list(copy_ids))
        for wanted in missing:
            failed += 1
            click.echo(f"{escape(wanted)}: not found in earlyhelp.dead-letter")
        for copy in chosen:
            outcome = queue.replay(copy)
            failed += outcome != "replayed"
            if outcome == "replayed" or outcome.startswith("kept"):
                outcome += f" to {copy.original_exchange} {copy.original_routing_key}"
            click.echo(f"{copy.id}: {escape(outcome)}")
    click.echo(f"{len(chosen) - (failed - len(missing))} replayed, {failed} not")
    if failed:
        sys.exit(1)


@dead_letters.command(name="purge")
@click.argument("copy_ids", nargs=-1)
@click.option("--all", "purge_all", is_flag=True, help="Remove every copy present now (not ones arriving meanwhile).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge_dead_letters(settings, copy_ids, purge_all, yes) -> None:
    """Remove copies for good (after reading them with show)."""
    from earlyhelp.reports.dead_letters import select

    if bool(copy_ids) == purge_all:
        raise click.UsageError("name the copies to purge, or give --all")
    with _permission_refusals(), _queue(settings, writes=True) as queue:
        copies = queue.read_all()
        chosen, missing = (copies, []) if purge_all else select(copies, list(copy_ids))
        for wanted in missing:
            click.echo(f"{escape(wanted)}: not found in earlyhelp.dead-letter")
        if chosen and not yes:
            click.confirm(f"Remove {len(chosen)} cop{'y' if len(chosen) == 1 else 'ies'} for good?", abort=True)
        for copy in chosen:
            queue.remove(copy)
            click.echo(f"{copy.id}: removed")
    click.echo(f"{len(chosen)} removed")
    if missing:
        sys.exit(1)


# -- cases ----------------------------------------------------------------------------------------------
@click.command()
@click.option("--state", multiple=True, help="received, checked, awaiting_information, triaged, allocated, ...")
@click.option("--district", multiple=True, help="A district as configured (or 'unassigned').")
@click.option("--source", multiple=True, help="school, health, social_care, family, ...")
@click.option("--service", multiple=True, help="early_help_unit, open_access, commissioned, ...")
@click.option("--overdue", is_flag=True, help="Only cases with an open SLA clock past its due time.")
@click.option("--due-within", default=None, help="Only cases with an open clock due within this span (2d, 36h).")
@click.option("--limit", type=int, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def cases(settings, state, district, source, service, overdue, due_within, limit, as_json) -> None:
    """List cases (no personal data), oldest first, with their next SLA due time."""
    from earlyhelp.reports.case_views import list_cases, parse_span

    try:
        span = parse_span(due_within) if due_within else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--due-within") from None
    now = utc_now()
    with _engine(settings).connect() as conn:
        rows = list_cases(conn, now, state=state, district=district, source=source, service=service,
                          overdue=overdue, due_within=span, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    header = ("case_id", "state", "kind", "source", "pri", "district", "service", "received", "next due", "")
    shown = [header] + [(r["case_id"], r["state"], r["kind"], r["source"], "P" if r["priority"] else "",
                         r["district"] or UNASSIGNED, r["service"] or "-", utc_minute(r["received_at"]),
                         utc_minute(r["next_due"]) + (f" ({','.join(r['open_stages'])})" if r["open_stages"] else ""),
                         "OVERDUE" if r["overdue"] else "") for r in rows]
    for line in table(shown, left=len(header)):
        click.echo(line)
    click.echo(f"{len(rows)} case{'s' if len(rows) != 1 else ''}" + (" (limit reached)" if len(rows) == limit else ""))


@click.command(name="case")
@click.argument("case_id")
@click.option("--show-personal", is_flag=True, help="Show the child's and notifier's details too (needs --reason).")
@click.option("--reason", default=None, help="Why you need the personal details (required with --show-personal; logged).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def case(settings, case_id, show_personal, reason, as_json) -> None:
    """One case: its facts, its timeline (who, when it happened, when recorded) and its SLA clocks."""
    from earlyhelp.reports.case_views import case_detail

    from .records import log_view, require_reason

    reason = require_reason(reason, "case --show-personal") if show_personal else None
    now = utc_now()
    with _engine(settings).connect() as conn:
        detail = case_detail(conn, case_id, now, personal=show_personal)
    if detail is None:
        raise click.ClickException(f"no case {escape(case_id)}")
    if show_personal:  # logged before anything is shown
        log_view(settings, command="case --show-personal", reason=reason, case_ids=[case_id],
                 shown="the case's details: the notification as provided (child, notifier, free text)")
    if as_json:
        click.echo(json.dumps(detail, indent=2, default=str))
        return
    c = {k: (escape(v) if isinstance(v, str) else v) for k, v in detail["case"].items()}
    click.echo(f"case {c['case_id']}  ({c['kind']} from {c['source']}, notification {c['notification_id']})")
    click.echo(f"  state {c['state']}, version {c['version']}, priority {'yes' if c['priority'] else 'no'}, "
               f"district {c['district'] or 'unassigned'}, service {c['service'] or '-'}, "
               f"team {c['team'] or '-'}, worker {c['worker_id'] or '-'}")
    click.echo(f"  received {utc_minute(c['received_at'])}, opened {utc_minute(c['opened_at'])}, "
               f"last change {utc_minute(c['updated_at'])}")
    click.echo("timeline (happened / recorded):")
    for h in detail["history"]:
        h = {k: (escape(v) if isinstance(v, str) else v) for k, v in h.items()}
        who = h["actor_id"] and f"{h['actor_id']} ({h['actor_role']})" or "engine"
        if h.get("sender_user_id"):  # who the broker says sent it, beside who the message claims acted
            who += f", sent by broker user {h['sender_user_id']}"
        move = f"{h['from_state'] or '-'} -> {h['to_state']}"
        click.echo(f"  {h['sequence']:>3}  {utc_minute(h['occurred_at'])} / {utc_minute(h['recorded_at'])}  "
                   f"{h['event_type']:<28} {move:<34} by {who}, caused by {h['caused_by']}")
        if h["data"]:
            click.echo(f"       {json.dumps(h['data'], sort_keys=True, default=str)}")
    click.echo("SLA clocks:")
    if not detail["clocks"]:
        click.echo("  none")
    for k in detail["clocks"]:
        k = {key: (escape(v) if isinstance(v, str) else v) for key, v in k.items()}
        click.echo(f"  {k['stage']:<11} {k['status']:<30} started {utc_minute(k['started_at'])}, "
                   f"due {utc_minute(k['due_at'])}, stopped {utc_minute(k['stopped_at'])}, "
                   f"allowance {k['allowance_amount']} {k['allowance_unit'].replace('_', ' ')}"
                   + (f", warned {utc_minute(k['warned_at'])}" if k["warned_at"] else "")
                   + (f", breached {utc_minute(k['breached_at'])}" if k["breached_at"] else ""))
    if show_personal:
        click.echo("details (personal data):")
        click.echo(json.dumps(detail.get("details"), indent=2, sort_keys=True, default=str))  # escapes controls
    else:
        click.echo("(the child's and notifier's details are hidden: add --show-personal)")


# -- report ---------------------------------------------------------------------------------------------
def _date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date like 2026-09-01", param_hint=name) from None


@click.command()
@click.option("--from", "first", default=None, help="First day (London date, YYYY-MM-DD); default 90 days ago.")
@click.option("--to", "last", default=None, help="Last day, included; default today.")
@click.option("--district", default=None, help="One district's figures only.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html", "cin-sources"]), default="text",
              show_default=True, help="cin-sources: each notification's Children in Need census referral source code, as CSV.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
@click.pass_obj
def report(settings, first, last, district, fmt, output) -> None:
    """Notifications, sources, step-downs, missing children, timeliness and unallocated cases for a period."""
    from earlyhelp.reports import render
    from earlyhelp.reports.figures import Period
    from earlyhelp.reports.loader import load_report
    from earlyhelp.workflows.calendar import local_date

    from .policy import policy_in_force

    now = utc_now()
    last_day = _date(last, "--to") or local_date(now)
    first_day = _date(first, "--from") or last_day - timedelta(days=90)
    if first_day > last_day:
        raise click.BadParameter("--from is after --to", param_hint="--from")
    districts = settings.district_names
    if district:
        known = {d.lower(): d for d in districts + [UNASSIGNED]}
        if district.lower() not in known:
            raise click.BadParameter(f"unknown district; use one of {', '.join(districts)}", param_hint="--district")
        district = known[district.lower()]
    engine = _engine(settings)
    try:
        policy = policy_in_force(engine, settings)[0]  # the stored one applied last, else the file's
        if fmt == "cin-sources":
            from earlyhelp.reports.cin_sources import render_csv
            from earlyhelp.reports.loader import notification_sources

            text = render_csv(notification_sources(engine, Period(first_day, last_day), district))
        else:
            text = render(load_report(engine, Period(first_day, last_day), policy, districts, now, district), fmt)
    finally:
        engine.dispose()
    if output:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


COMMANDS = [queues, dead_letters, cases, case, report]
