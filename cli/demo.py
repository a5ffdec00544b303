"""`earlyhelp demo`: the engine doing its real job on weeks of synthetic referrals, in about a minute."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click


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
    from earlyhelp.simulation.runner import run_demo

    broker = broker or settings.broker_url
    if not broker.startswith("memory://") and not broker_answers(broker):
        click.echo(f"No RabbitMQ answers at {_without_password(broker)}: running the demo on kombu's in-memory "
                   "transport instead (one process; no publisher confirms, queue arguments or dead-lettering).")
        broker = "memory://"
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
               f"{result.seconds:.1f} s; {result.sla_events} SLA warnings and breaches raised.\n")
    _print_summary(database)


def _print_summary(database_url: str) -> None:
    try:
        from earlyhelp.reports.cli_summary import render_demo_summary  # the managers' report, when present
    except ImportError:
        render_demo_summary = None
    if render_demo_summary is not None:
        click.echo(render_demo_summary(database_url))
        return
    from sqlalchemy import func, select

    from earlyhelp.persistence.database import make_engine
    from earlyhelp.persistence.tables import cases, sla_clocks

    engine = make_engine(database_url)
    with engine.connect() as conn:
        by_source = conn.execute(select(cases.c.source, func.count()).group_by(cases.c.source)
                                 .order_by(func.count().desc())).all()
        by_state = conn.execute(select(cases.c.state, func.count()).group_by(cases.c.state)).all()
        breaches = conn.execute(select(sla_clocks.c.stage, func.count()).where(sla_clocks.c.breached_at.is_not(None))
                                .group_by(sla_clocks.c.stage)).all()
    engine.dispose()
    total = sum(n for _, n in by_source) or 1
    click.echo("Notifications by source:")
    for source, n in by_source:
        click.echo(f"  {source:<14} {n:>6}  {100 * n / total:5.1f}%")
    click.echo("Cases by state: " + ", ".join(f"{s} {n}" for s, n in sorted(by_state)))
    click.echo("SLA breaches by stage: " + (", ".join(f"{s} {n}" for s, n in breaches) or "none"))


def _without_password(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('@', 1)[1]}"
