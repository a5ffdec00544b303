"""`earlyhelp demo`: the engine doing its real job on weeks of synthetic referrals, in about a minute."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click


def engines_already_consuming(url: str) -> int:
    """Consumers on the engine's input queues: another `earlyhelp serve` would take the demo's messages."""
    from kombu import Connection

    from earlyhelp.consumers.topology import INPUT_QUEUES

    total = 0
    with Connection(url, connect_timeout=3) as conn:
        for queue in INPUT_QUEUES.values():
            try:
                total += conn.channel().queue_declare(queue.name, passive=True).consumer_count
            except conn.channel_errors:  # not declared yet: nobody consumes it
                pass
    return total


def broker_answers(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:  # noqa: BLE001 - any failure means "use memory://"
        return False


@click.command()
@click.option("--seed", type=int, default=2014, show_default=True, help="The same seed gives the same stream.")
@click.option("--days", type=click.IntRange(1, 365), default=56, show_default=True, help="Simulated span.")
@click.option("--per-day", type=click.IntRange(1, 5000), default=50, show_default=True,
              help="Notifications on a typical weekday.")
@click.option("--broker", default=None, help="Broker URL; default EARLYHELP_BROKER_URL. memory:// needs none.")
@click.option("--database", default=None, help="Database URL; default a fresh SQLite file in a temporary folder.")
@click.pass_obj
def demo(settings, seed, days, per_day, broker, database) -> None:
    """Generate a realistic stream, act on it as staff would, and report what the engine saw."""
    from earlyhelp.consumers.runtime import url_without_password
    from earlyhelp.simulation.runner import run_demo

    broker = broker or settings.broker_url
    if not broker.startswith("memory://") and not broker_answers(broker):
        click.echo(f"No RabbitMQ answers at {url_without_password(broker)}: running the demo on kombu's in-memory "
                   "transport instead (one process; no publisher confirms, queue arguments or dead-lettering).")
        broker = "memory://"
    elif not broker.startswith("memory://") and engines_already_consuming(broker):
        raise click.ClickException(
            "another engine is consuming from this broker's earlyhelp.engine.* queues and would take the "
            "demo's messages: stop it, or run the demo with --broker memory://")
    elif broker.startswith("memory://"):
        click.echo("Running on kombu's in-memory transport (one process; no publisher confirms, queue "
                   "arguments or dead-lettering).")
    folder = Path(tempfile.mkdtemp(prefix="earlyhelp-demo-"))
    database = database or f"sqlite:///{folder / 'demo.sqlite'}"
    demo_settings = settings.model_copy(update={"broker_url": broker, "database_url": database,
                                                "metrics_port": 0, "sla_scan_interval": 3600})
    click.echo(f"Simulating {days} days at about {per_day} notifications a weekday (seed {seed}); "
               f"database {database}")
    result = run_demo(demo_settings, seed, days, per_day, progress=click.echo)
    click.echo(f"\nHandled {result.notifications} notifications and {result.commands} staff commands in "
               f"{result.seconds:.1f} s; {result.sla_events} SLA warnings and breaches raised.")
    click.echo(f"Among them: {result.repeats} notifications of a child already notified, from another source, "
               f"and {result.extensions} clock extensions granted by managers.\n")
    _print_report(demo_settings, database, result, folder)


def _print_report(settings, database_url: str, result, folder: Path) -> None:
    """The managers' report over the simulated span, and the breaches the engine raised."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from earlyhelp.persistence.database import make_engine
    from earlyhelp.persistence.tables import sla_clocks
    from earlyhelp.reports import render
    from earlyhelp.reports.figures import Period
    from earlyhelp.reports.loader import load_report
    from earlyhelp.workflows.sla_policy import load_policy

    engine = make_engine(database_url)
    try:
        period = Period(result.started.date(), (result.ended - timedelta(days=1)).date())
        _print_policy_check(engine, load_policy(settings.sla_policy), result, folder)
        data = load_report(engine, period, load_policy(settings.sla_policy), settings.district_names, result.ended)
        with engine.connect() as conn:
            breaches = conn.execute(select(sla_clocks.c.stage, func.count())
                                    .where(sla_clocks.c.breached_at.is_not(None)).group_by(sla_clocks.c.stage)).all()
            warnings = conn.execute(select(func.count()).select_from(sla_clocks)
                                    .where(sla_clocks.c.warned_at.is_not(None))).scalar_one()
    finally:
        engine.dispose()
    click.echo(render(data, "text"))
    click.echo(f"SLA events the engine published: {warnings} warnings; breaches by stage: "
               + (", ".join(f"{stage} {n}" for stage, n in sorted(breaches)) or "none"))
    html = folder / "report.html"
    html.write_text(render(data, "html"), encoding="utf-8")
    click.echo(f"The same report with charts: {html}")


def _print_policy_check(engine, in_force, result, folder: Path) -> None:
    """`earlyhelp policy check` on a stricter policy, over the clocks still open at the end: what it would change."""
    from importlib.resources import files

    from earlyhelp.reports.loader import open_clocks
    from earlyhelp.workflows.policy_check import compare
    from earlyhelp.workflows.sla_policy import DEFAULT_POLICY_RESOURCE, load_policy

    from .policy import comparison_lines

    stricter = folder / "stricter-policy.toml"
    shipped = files("earlyhelp.workflows").joinpath(DEFAULT_POLICY_RESOURCE).read_text(encoding="utf-8")
    stricter.write_text(shipped.replace('allowance = { amount = 4, unit = "working_days" }',
                                        'allowance = { amount = 3, unit = "working_days" }')
                        .replace('allowance = { amount = 14, unit = "calendar_days" }',
                                 'allowance = { amount = 10, unit = "calendar_days" }'), encoding="utf-8")
    figures = compare(open_clocks(engine), in_force, load_policy(stricter), result.ended)
    click.echo(f"Trying a policy first (earlyhelp policy check {stricter}): triage in 10 calendar days and "
               "allocation in 3 working days, over the clocks open at the end; nothing was changed.")
    for line in comparison_lines(figures, by_district=False):
        click.echo(line)
    click.echo("")
