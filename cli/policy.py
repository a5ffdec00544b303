"""`earlyhelp policy check FILE`: what a new SLA policy would do to every open clock, changing nothing;
`earlyhelp policy apply FILE`: make it the policy in force for every worker (stored with a version)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from earlyhelp.clock import utc_now
from earlyhelp.printing import table


@click.group()
def policy() -> None:
    """Try an SLA policy before it is in force."""


@policy.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def check(settings, file: Path, fmt: str) -> None:
    """Compare FILE with the policy in force over every open clock: open, overdue now, overdue under FILE."""
    from earlyhelp.persistence.database import make_engine
    from earlyhelp.reports.loader import open_clocks
    from earlyhelp.workflows.policy_check import compare
    from earlyhelp.workflows.sla_policy import PolicyError, load_policy

    if not file.exists():
        raise click.BadParameter(f"{file} does not exist", param_hint="FILE")
    try:
        new = load_policy(file)
    except PolicyError as error:
        raise click.BadParameter(str(error), param_hint="FILE") from error
    engine = make_engine(settings.database_url)
    try:
        current, in_force = policy_in_force(engine, settings)
        result = compare(open_clocks(engine), current, new, utc_now())
    finally:
        engine.dispose()
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{file} beside the policy in force ({in_force}), over every open clock, as of now:")
    for line in comparison_lines(result):
        click.echo(line)
    click.echo("Nothing was changed.")


def comparison_lines(result: dict, by_district: bool = True) -> list[str]:
    """The check's figures as tables: per stage, then per district and stage."""
    from earlyhelp.workflows.policy_check import MEASURES

    header = ["stage", *(m.replace("_", " ") for m in MEASURES)]
    lines = table([header, *([s, *(c[m] for m in MEASURES)] for s, c in result["stages"].items())], rule=True)
    if by_district and result["by_district"]:
        rows = [["district", *header]]
        rows += [[d, s, *(c[m] for m in MEASURES)] for d, stages in result["by_district"].items()
                 for s, c in stages.items()]
        lines += ["", *table(rows, left=2, rule=True)]
    return lines


class BadPolicy(click.ClickException):
    """One line, exit code 2: the file cannot be used and nothing was changed."""

    exit_code = 2


def policy_in_force(engine, settings):
    """(the policy in force, where it comes from): the stored one applied last, else EARLYHELP_SLA_POLICY's file,
    else the shipped one."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from earlyhelp.persistence.policy_store import stored_policy
    from earlyhelp.workflows.sla_policy import PolicyError, load_policy

    try:
        with engine.connect() as conn:
            stored = stored_policy(conn)
    except (OperationalError, ProgrammingError):  # a database from before `policy apply` existed
        stored = None
    except PolicyError as error:
        raise click.ClickException(f"the policy in force: {error}") from error
    if stored is not None:
        return stored[1], f"version {stored[0]}, applied with `earlyhelp policy apply`"
    try:
        return load_policy(settings.sla_policy), str(settings.sla_policy or "the shipped policy")
    except PolicyError as error:
        raise click.ClickException(f"the policy in force: {error}") from error


@policy.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def apply(settings, file: Path) -> None:
    """Make FILE the SLA policy in force for every worker: stored with a version, each open clock recomputed once
    (a history row per case it changes), breaches already published standing."""
    from earlyhelp.persistence.database import make_engine, migrate
    from earlyhelp.persistence.policy_store import apply_policy
    from earlyhelp.records.access_log import operator_name
    from earlyhelp.workflows.sla_policy import PolicyError, read_policy_file

    try:
        policy_read, document = read_policy_file(file)
    except PolicyError as error:
        raise BadPolicy(f"{error}; nothing was changed") from None
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        applied = apply_policy(engine, policy_read, document, str(file), operator_name(), utc_now)
    finally:
        engine.dispose()
    click.echo(f"{file} is the SLA policy in force: version {applied.version}. Of {applied.open_clocks} open clocks, "
               f"{applied.clocks_changed} were recomputed, on {applied.cases_changed} cases (a history row each); "
               "breaches already published stand, and a clock now past its new deadline is breached by the next "
               "scan. Every worker picks it up within a few seconds, without a restart.")
