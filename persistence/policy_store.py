"""The SLA policy in force, stored by version (`earlyhelp policy apply`), and every worker's pick-up of it.

`apply_policy` stores a new version and, in the same transaction, recomputes each open clock once under it
(workflows.sla_tracking.SlaTracker.rebase: the allowance for its stage and priority, its pauses and
extensions kept; `warned_at` and `breached_at` stand, so a published breach is never taken back, and a
clock now past its new deadline is breached by the next scan). Each case whose clocks changed gets one
history row, `sla.policy_applied` (no event is published), which bumps the case's version with the same
`WHERE version = <read>` check every worker uses, so a worker that read the case before the apply loses the
race and retries on the recomputed clocks instead of writing its stale copy back (erasure's `case.erased`
row works the same way). The clocks are read `FOR UPDATE` on PostgreSQL, as the workers read them.

`PolicyWatcher` is each worker's pick-up: one primary-key read of the highest version, by the scanner at
every scan and by the batch processor at most every `interval` seconds (never per message); a new version
is read back with the same checks as the file and swapped into the worker's SlaTracker. Each clock records
the version it was computed under, so for a while after a pick-up the scanner also recomputes any open clock
computed under an older one (`catch_up`, through a partial index): a worker that had not yet looked may
have started or moved one in those seconds. A catch-up writes the same history row as the apply.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from earlyhelp.logs import get_logger
from earlyhelp.workflows.sla_policy import PolicyError, SlaPolicy, policy_from_text
from earlyhelp.workflows.sla_tracking import SlaTracker

from .case_store import CaseStore, ConcurrencyConflict, bulk_insert, clock_from_row, clock_row
from .failures import is_lost_race
from .tables import case_history, cases, sla_clocks, sla_policies

log = get_logger("earlyhelp.sla")

APPLIED_EVENT = "sla.policy_applied"  # a history row only: no event is published
MAX_ATTEMPTS = 10
_BUMP = (update(cases).where(and_(cases.c.case_id == bindparam("b_case_id"),
                                  cases.c.version == bindparam("b_version_read")))
         .values(version=bindparam("b_version"), updated_at=bindparam("b_at")))


@dataclass(frozen=True)
class Applied:
    version: int
    clocks_changed: int
    cases_changed: int
    open_clocks: int


def stored_version(conn: Connection) -> int | None:
    """The version in force, or None when no policy was ever applied (the primary key's maximum)."""
    return conn.execute(select(func.max(sla_policies.c.version))).scalar_one()


def stored_policy(conn: Connection) -> tuple[int, SlaPolicy] | None:
    """The policy in force and its version, or None (then EARLYHELP_SLA_POLICY or the shipped one is)."""
    row = conn.execute(select(sla_policies.c.version, sla_policies.c.document, sla_policies.c.file_name)
                       .order_by(sla_policies.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    return row.version, policy_from_text(row.document, f"{row.file_name} (stored as version {row.version})")


def apply_policy(engine: Engine, policy: SlaPolicy, document: str, file_name: str, operator: str,
                 now: Callable[[], datetime]) -> Applied:
    """Store `policy` as the next version and recompute every open clock under it, in one transaction;
    retried when a worker changed a case meanwhile."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            with engine.begin() as conn:
                return _apply(conn, policy, document, file_name, operator, now())
        except ConcurrencyConflict:
            pass
        except Exception as error:  # noqa: BLE001 - a lost race (or another apply took the version) is retried
            if not (is_lost_race(error) or "sla_policies" in str(getattr(error, "orig", error)).lower()):
                raise
        time.sleep(min(0.05 * 2 ** attempt, 1.0))
    raise ConcurrencyConflict(f"the cases kept changing during {MAX_ATTEMPTS} attempts; run apply again")


def _apply(conn: Connection, policy: SlaPolicy, document: str, file_name: str, operator: str,
           at: datetime) -> Applied:
    version = (stored_version(conn) or 0) + 1
    recomputed = _recompute_open(conn, SlaTracker(policy, version), None, at, operator, "operator",
                                 f"earlyhelp policy apply (version {version})", {"file": file_name[:1000]})
    conn.execute(insert(sla_policies).values(
        version=version, document=document, file_name=file_name[:1000], applied_at=at, applied_by=operator[:200],
        clocks_changed=recomputed.clocks_changed, cases_changed=recomputed.cases_changed))
    return Applied(version, recomputed.clocks_changed, recomputed.cases_changed, recomputed.open_clocks)


def catch_up(engine: Engine, tracker: SlaTracker, at: datetime) -> Applied:
    """Recompute, under `tracker`'s stored policy, the open clocks last computed under an older one: those a
    worker started or moved in the seconds before it picked the new version up. Same rows as the apply."""
    version = tracker.version
    stale = or_(sla_clocks.c.policy_version.is_(None), sla_clocks.c.policy_version < version)
    for attempt in range(MAX_ATTEMPTS):
        try:
            with engine.begin() as conn:
                return _recompute_open(conn, tracker, stale, at, "engine", "engine",
                                       f"policy version {version} picked up", {"catch_up": True})
        except ConcurrencyConflict:
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
    raise ConcurrencyConflict(f"the cases kept changing during {MAX_ATTEMPTS} attempts")


def _recompute_open(conn: Connection, tracker: SlaTracker, stale, at: datetime, actor_id: str, actor_role: str,
                    cause: str, extra: dict) -> Applied:
    """Rebase every open clock (or those `stale` selects) under `tracker`, stamp its version on them, and write a
    history row, bumping the version, on each case whose clocks changed."""
    query = (select(sla_clocks, cases.c.version.label("case_version"), cases.c.state.label("case_state"))
             .join(cases, cases.c.case_id == sla_clocks.c.case_id)
             .where(sla_clocks.c.stopped_at.is_(None), *(() if stale is None else (stale,)))
             .order_by(sla_clocks.c.case_id, sla_clocks.c.stage))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=sla_clocks)
    rows = conn.execute(query).all()
    changed_rows: list[dict] = []
    touched: dict[str, dict] = {}  # case_id -> its version read, state and what changed per stage
    for row in rows:
        clock = clock_from_row(row)
        before = (clock.allowance.model_dump(), clock.due_at)
        if not tracker.rebase(clock):
            continue
        changed_rows.append(clock_row(row.case_id, clock))
        case = touched.setdefault(row.case_id, {"version": row.case_version, "state": row.case_state, "clocks": {}})
        case["clocks"][clock.stage] = {
            "previous_allowance": before[0], "allowance": clock.allowance.model_dump(),
            "previous_due_at": _iso(before[1]), "due_at": _iso(clock.due_at),
        }
    if changed_rows:
        CaseStore(conn).update_clocks(changed_rows)  # the flow's own write-back of clocks by id
    ids = [row.id for row in rows]
    for chunk in range(0, len(ids), 1000):  # every clock read is now computed under this version
        conn.execute(update(sla_clocks).where(sla_clocks.c.id.in_(ids[chunk:chunk + 1000]))
                     .values(policy_version=tracker.version))
    if touched:
        moved = conn.execute(_BUMP, [{"b_case_id": case_id, "b_version_read": c["version"],
                                      "b_version": c["version"] + 1, "b_at": at} for case_id, c in touched.items()])
        if moved.rowcount != len(touched):
            raise ConcurrencyConflict(f"{len(touched) - moved.rowcount} of {len(touched)} cases moved")
        bulk_insert(conn, case_history, [
            _history_row(case_id, c, tracker.version, at, actor_id, actor_role, cause, extra)
            for case_id, c in touched.items()])
    return Applied(tracker.version, len(changed_rows), len(touched), len(rows))


def _history_row(case_id: str, case: dict, version: int, at: datetime, actor_id: str, actor_role: str,
                 cause: str, extra: dict) -> dict:
    from earlyhelp.consumers.recording import event_id_for

    sequence = case["version"] + 1
    return {
        "case_id": case_id, "sequence": sequence, "event_type": APPLIED_EVENT,
        "event_id": event_id_for(case_id, sequence, APPLIED_EVENT), "from_state": case["state"],
        "to_state": case["state"], "occurred_at": at, "recorded_at": at, "actor_id": actor_id[:200],
        "actor_role": actor_role, "caused_by": cause, "sender_user_id": None,
        "data": {"policy_version": version, **extra, "clocks": case["clocks"]},
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class PolicyWatcher:
    """A worker's pick-up of the stored policy: `refresh` reads the version in force (one primary-key read) and
    swaps a new one into `tracker`; `refresh()` does so at most every `interval` seconds, `refresh(force=True)`
    every call (the scanner's, once a scan). Safe to share between a worker's threads."""

    def __init__(self, engine: Engine, tracker: SlaTracker, interval: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.tracker, self.interval, self.monotonic = engine, tracker, interval, monotonic
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._catch_up_until: float | None = None

    def refresh(self, force: bool = False) -> bool:
        """True when a new policy was put in force. Never raises: the database may be away (the caller's own
        work meets that and backs off); the policy in force stays until the next look."""
        if not self._lock.acquire(blocking=force):  # the processor never waits while the scanner looks
            return False
        try:
            return self._refresh(force)
        finally:
            self._lock.release()

    def _refresh(self, force: bool) -> bool:
        now = self.monotonic()
        if not force and self._checked_at is not None and now - self._checked_at < self.interval:
            return False
        self._checked_at = now
        try:
            with self.engine.connect() as conn:
                version = stored_version(conn)
                if version is None or version == self.tracker.version:
                    return False
                found = stored_policy(conn)
        except PolicyError as error:
            log.error("the stored SLA policy cannot be used; the policy in force stays", error=str(error)[:300])
            return False
        except Exception as error:  # noqa: BLE001 - see the docstring
            log.warning("could not read the SLA policy version; the policy in force stays",
                        error=type(error).__name__, detail=str(error)[:200])
            return False
        if found is None:
            return False
        version, policy = found
        self.tracker.use(policy, version)
        # Another worker may still start a clock under the previous policy for up to `interval` seconds:
        # the scanner catches those up until well after that (and once more when the window has passed).
        self._catch_up_until = now + 2 * self.interval + 1
        log.info("sla policy picked up", version=version)
        return True

    def catch_up(self, at: datetime) -> int:
        """After a pick-up, recompute open clocks computed under an older version (the scanner calls this each
        scan; it does anything only in the window after a pick-up). Returns the clocks changed; never raises."""
        with self._lock:
            if self._catch_up_until is None or self.tracker.version is None:
                return 0
            last = self.monotonic() > self._catch_up_until
            try:
                done = catch_up(self.engine, self.tracker, at)
            except Exception as error:  # noqa: BLE001 - the next scan tries again
                log.warning("could not recompute clocks under the new SLA policy; the next scan tries again",
                            error=type(error).__name__, detail=str(error)[:200])
                return 0
            if last:
                self._catch_up_until = None
            if done.clocks_changed:
                log.info("clocks recomputed under the policy in force", version=done.version,
                         clocks=done.clocks_changed, cases=done.cases_changed)
            return done.clocks_changed
