"""Handles a batch of deliveries in one database transaction, committed before anything is acked.

`Batch` is one transaction's worth of deliveries (its store, the cases it loaded, what it did), which the
handlers (consumers/handlers.py) work in; `BatchProcessor` runs parse → transaction(handlers) → commit.

Failures are sorted by cause, because each needs a different answer:
- a lost race with another worker (a case's version moved, a processed id inserted first): retry the
  batch at once; the second pass sees the other worker's work as a repeat or a newer version;
- the database is away: keep the deliveries, ack nothing, retry with backoff until it returns (never
  requeue: a requeue would count against the queue's delivery limit and dead-letter good messages);
- anything else is a fault in handling one message (a bug, a constraint): the batch is split and each
  message retried alone; one that keeps failing is dead-lettered with its reason, so it never blocks
  the messages behind it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy.engine import Engine

from earlyhelp import metrics
from earlyhelp.clock import next_backoff
from earlyhelp.logs import get_logger
from earlyhelp.persistence.failures import is_database_unavailable, is_lost_race
from earlyhelp.persistence.store import Store, Transactions, sql_transactions
from earlyhelp.records.pseudonyms import KINDS, child_digests
from earlyhelp.schemas import COMMANDS_EXCHANGE, MessageRefused, Notification
from earlyhelp.schemas.events import public_code
from earlyhelp.workflows.case_flow import Case, CaseFlow
from earlyhelp.workflows.commands import command_models
from earlyhelp.workflows.states import CLOSED

from .delivery import Delivery
from .handlers import Handled, Parsed, handle, parse
from .refusals import dead_letter_row, minimal_dead_letter_row, rejection_event, rejection_row

log = get_logger("earlyhelp.batch")

MAX_RACE_RETRIES = 20
ATTEMPTS_BEFORE_DEAD_LETTER = 3
# The outcome of a delivery that could be neither handled nor dead-lettered: the runtime returns it to
# the queue instead of acking it, and the queue's delivery limit dead-letters it (with x-death).
UNSETTLED = "unsettled"


@dataclass
class BatchResult:
    handled: list[Handled]


@dataclass
class Prepared:
    """A batch parsed and validated, not yet handled: made on the consuming thread while the batch before
    it commits (consumers/runtime.py), then handled in one transaction."""
    deliveries: list[Delivery]
    parsed: list[Parsed]
    started: float  # perf_counter at prepare: the handling time logged and measured includes the parse


class Batch:
    """One transaction's worth of deliveries: the store, the cases loaded, what this batch already did."""

    def __init__(self, store: Store, flow: CaseFlow, now: datetime) -> None:
        self.store, self.flow, self.now = store, flow, now
        self.cases: dict[str, Case] = {}
        self.versions_read: dict[str, int] = {}
        self.processed: dict[str, tuple[str, str | None, datetime]] = {}
        self.details: dict[str, Notification] = {}
        # A child already known: each notification's identifier hashes (by id() of its Parsed) and, for every
        # hash, the cases holding it (open, or closed within a year), found in preload and kept up to date
        # as this batch opens cases, so two notifications for one new child in one batch link too.
        self.digests: dict[int, dict[str, str]] = {}
        self.identities: dict[str, set[str]] = {}
        self.stored: dict[int, dict] = {}  # each notification as stored (JSON), dumped once for hashes and details

    def preload(self, parsed: list[Parsed]) -> None:
        """Read every processed id, case and matching child the batch names: the processed ids (locking the
        children's identifier hashes), one look-up of every notification's identifier hashes, then the cases
        (commands' and matches') with their clocks."""
        command_cases = [p.case_id for p in parsed if p.input == "command" and p.message is not None]
        notifications = [p for p in parsed if p.input == "notification" and p.message is not None]
        wanted: set[str] = set()
        if notifications:
            key = self.store.pseudonym_key()
            for p in notifications:
                self.stored[id(p)] = p.message.model_dump(mode="json", exclude_none=True)
                self.digests[id(p)] = child_digests(key, self.stored[id(p)])
            wanted = {d for found in self.digests.values() for d in found.values()}
        # The children's hashes are locked before they are looked up: another worker opening a case for one of
        # them is waited for, and found (persistence/case_store.py, load_processed).
        self.processed = self.store.load_processed((p.key for p in parsed if p.key), lock_children=wanted)
        if wanted:
            since = a_year_before(min(p.message.received_at for p in notifications))
            for digest, _kind, case_id in self.store.find_identified(wanted, since):
                self.identities.setdefault(digest, set()).add(case_id)
        matched = {cid for ids in self.identities.values() for cid in ids}
        self.cases = self.store.load_cases([*command_cases, *matched])
        self.versions_read = {cid: c.version for cid, c in self.cases.items()}

    def match(self, parsed: Parsed) -> tuple[Case | None, list[str], list[str]]:
        """The open case this notification's child already has (or None), the identifiers it matched on (by
        name, in KINDS order), and the child's cases closed within the year before it was received. Where
        several open cases match, the one matching on most identifiers, then the oldest. Dictionary look-ups."""
        found = self.digests.get(id(parsed), {})
        hits: dict[str, list[str]] = {}
        for kind, digest in found.items():
            for case_id in self.identities.get(digest, ()):
                hits.setdefault(case_id, []).append(kind)
        since = a_year_before(parsed.message.received_at)
        open_cases, previous = [], []
        for case_id, kinds in hits.items():
            case = self.cases.get(case_id)
            if case is None:
                continue
            if case.state != CLOSED:
                open_cases.append((case, kinds))
            elif case.last_occurred_at is not None and case.last_occurred_at >= since:
                previous.append(case)
        previous_ids = [c.case_id for c in sorted(previous, key=_oldest_first)]
        if not open_cases:
            return None, [], previous_ids
        case, kinds = min(open_cases, key=lambda hit: (-len(hit[1]), *_oldest_first(hit[0])))
        return case, [k for k in KINDS if k in kinds], previous_ids

    def stored_json(self, parsed: Parsed) -> dict:
        """The notification as it is stored (case_details, linked_notifications), dumped once per batch."""
        if id(parsed) not in self.stored:
            self.stored[id(parsed)] = parsed.message.model_dump(mode="json", exclude_none=True)
        return self.stored[id(parsed)]

    def known(self, parsed: Parsed, case_id: str) -> None:
        """A case this batch opened: later notifications in the batch for the same child find it."""
        for digest in self.digests.get(id(parsed), {}).values():
            self.identities.setdefault(digest, set()).add(case_id)

    def notification_of(self, case_id: str) -> Notification | None:
        """The case's stored notification; None for an erased case (closed: its state refuses what comes)."""
        if case_id not in self.details:
            stored = self.store.load_details(case_id)
            self.details[case_id] = None if stored is None else Notification.model_validate(
                stored, context={"stored": True})
        return self.details[case_id]

    # -- outcomes shared by the handlers ---------------------------------------------------------
    def repeat_or_conflict(self, parsed: Parsed, digest: str) -> Handled | None:
        seen = self.processed.get(parsed.key)
        if seen is None:
            return None
        first_hash, case_id, first_at = seen
        if first_hash == digest:
            return Handled("repeat", case_id, message_key=parsed.key)
        kind, ident = parsed.input, parsed.ident
        reason = (f"{kind}_id '{ident}' was already used on {first_at.isoformat()} for a different {kind}"
                  f"{f' (case {case_id})' if case_id else ''}; send a new id for a new {kind}")
        self.refuse(parsed, MessageRefused(reason, [f"{kind}_id: already used for different content"],
                                           ids={f"{kind}_id": ident, "case_id": case_id}, code="conflict"))
        return Handled("conflict", case_id, reason, parsed.key)

    def refuse(self, parsed: Parsed, refusal: MessageRefused, dead_letter: bool = True,
               extra: dict | None = None) -> Handled:
        event_type = f"{parsed.input}.rejected"
        # The contract's one word for the kind of refusal; the fine-grained code stays for the metrics.
        extra = {"code": public_code(refusal.code), **(extra or {})}
        event = rejection_event(event_type, refusal.reason, refusal.errors, refusal.ids, parsed.delivery,
                                self.now, extra)
        self.store.add_outbox(rejection_row(event, self.now))
        if dead_letter:
            self.store.add_outbox(dead_letter_row(parsed.delivery, refusal.reason, self.now,
                                                  getattr(refusal, "original_size", None)))
        metrics.REFUSALS.labels(parsed.input, refusal.code).inc()
        return Handled("refused" if dead_letter else "not_allowed", refusal.ids.get("case_id"), refusal.reason)

    def mark_processed(self, parsed: Parsed, digest: str, case_id: str) -> None:
        self.store.add_processed(parsed.key, digest, case_id, self.now)
        self.processed[parsed.key] = (digest, case_id, self.now)


def a_year_before(instant: datetime) -> datetime:
    """The same instant a calendar year earlier (29 February -> 28 February): the re-referral window."""
    try:
        return instant.replace(year=instant.year - 1)
    except ValueError:
        return instant.replace(year=instant.year - 1, day=28)


def _oldest_first(case: Case) -> tuple:
    return (case.received_at.timestamp() if case.received_at else 0.0, case.case_id)


class BatchProcessor:
    """Runs batches through parse → transaction(handlers) → commit; the caller acks after it returns."""

    def __init__(self, engine: Engine | None, clock: Callable[[], datetime], districts, flow: CaseFlow | None = None,
                 on_database_state: Callable[[bool], None] | None = None,
                 should_stop: Callable[[], bool] = lambda: False, sleep=time.sleep,
                 transactions: Transactions | None = None, before_batch: Callable[[], object] | None = None) -> None:
        """`transactions`: opens a transaction and gives its store; by default SQL transactions on `engine`
        (persistence/store.py), a MemoryDatabase's in the handlers' unit tests. `before_batch`: called before
        each batch (the SLA policy's pick-up, which reads the stored version at most every few seconds)."""
        self.engine, self.clock, self.districts = engine, clock, list(districts)
        self.transaction = transactions or sql_transactions(engine)
        self.flow = flow or CaseFlow()
        # The routing of case.<command> keys follows the flow's command table, built once.
        self.command_models = command_models(self.flow.commands)
        self.on_database_state = on_database_state or (lambda up: None)
        self.should_stop, self.sleep = should_stop, sleep
        self.before_batch = before_batch or (lambda: None)

    def process(self, deliveries: list[Delivery]) -> BatchResult:
        """Handle and commit `deliveries`; returns once every one of them may be acked."""
        return self.handle(self.prepare(deliveries))

    def prepare(self, deliveries: list[Delivery]) -> Prepared:
        """Parse and validate: CPU only, no database, no state; safe beside a `handle` on another thread."""
        started = time.perf_counter()
        now = self.clock()
        return Prepared(deliveries, [self._parse(d, now) for d in deliveries], started)

    def handle(self, prepared: Prepared) -> BatchResult:
        """Handle a prepared batch in one transaction and commit it; returns once every delivery may be acked.
        Batches must be handled one after another, in the order they were received."""
        deliveries, parsed, started = prepared.deliveries, prepared.parsed, prepared.started
        self.before_batch()
        try:
            handled = self._commit(parsed)
        except _HandlingFault:
            handled = [self._one_alone(p) for p in parsed] if len(parsed) > 1 else [self._one_alone(parsed[0])]
        metrics.BATCH_SIZE.observe(len(deliveries))
        metrics.HANDLING_SECONDS.observe(time.perf_counter() - started)
        for p, h in zip(parsed, handled):
            metrics.MESSAGES.labels(p.input, h.outcome).inc()
            if h.outcome == "repeat":
                metrics.REPEATS.labels(p.input).inc()
            log.info("message handled", input=p.input, outcome=h.outcome, case_id=h.case_id,
                     message_id=p.delivery.message_id, routing_key=p.delivery.printable_routing_key,
                     refusal=h.reason if h.outcome in ("refused", "conflict", "not_allowed") else None,
                     duration_ms=round((time.perf_counter() - started) * 1000, 3), batch=len(deliveries))
        return BatchResult(handled)

    def _parse(self, delivery: Delivery, now: datetime) -> Parsed:
        """parse() refuses bad input itself; anything it raises instead is a fault in the engine, and the
        message is refused as unreadable rather than stop the batch (and the consume loop) for it."""
        try:
            return parse(delivery, now, self.districts, self.command_models)
        except Exception as error:  # noqa: BLE001 - logged by type; the message is refused below
            log.error("message could not be parsed", error=type(error).__name__, message_id=delivery.message_id,
                      routing_key=delivery.printable_routing_key)
            kind = "command" if delivery.exchange == COMMANDS_EXCHANGE else "notification"
            return Parsed(delivery, kind, refusal=MessageRefused(
                f"The engine could not read this {kind} ({type(error).__name__}); check it against the contract.",
                [f"body: unreadable ({type(error).__name__})"], code="unreadable"))

    # -- the transaction, with retries by cause --------------------------------------------------
    def _commit(self, parsed: list[Parsed], now: datetime | None = None) -> list[Handled]:
        races, backoff = 0, 0.05
        while True:
            try:
                with self.transaction() as store:
                    batch = Batch(store, self.flow, now or self.clock())
                    batch.preload(parsed)
                    handled = [handle(batch, p) for p in parsed]
                    store.flush(batch.now)
                self.on_database_state(True)
                return handled
            except Exception as error:  # noqa: BLE001 - sorted by cause below
                if is_lost_race(error) and races < MAX_RACE_RETRIES:
                    races += 1
                    metrics.RETRIES.labels("race").inc()
                    self.sleep(0.001 * races)
                    continue
                if is_database_unavailable(error):
                    self.on_database_state(False)
                    metrics.RETRIES.labels("database").inc()
                    log.warning("database unavailable; holding the batch", error=type(error).__name__,
                                retry_in_s=backoff, batch=len(parsed))
                    if self.should_stop():
                        raise DatabaseUnavailable() from error
                    self.sleep(backoff)
                    backoff = next_backoff(backoff)
                    continue
                raise _HandlingFault() from error

    def _one_alone(self, parsed: Parsed) -> Handled:
        """Retry one message in its own transaction; dead-letter it if it keeps failing."""
        last: BaseException | None = None
        for attempt in range(1, ATTEMPTS_BEFORE_DEAD_LETTER + 1):
            try:
                return self._commit([parsed])[0]
            except _HandlingFault as fault:
                last = fault.__cause__
                metrics.RETRIES.labels("fault").inc()
                log.warning("handling failed", attempt=attempt, error=type(last).__name__,
                            message_id=parsed.delivery.message_id, routing_key=parsed.delivery.printable_routing_key)
        reason = (f"handling failed {ATTEMPTS_BEFORE_DEAD_LETTER} times ({type(last).__name__}); "
                  "the engine could not process this message")
        log.error("dead-lettering a message that kept failing", error=type(last).__name__, exc_info=last,
                  message_id=parsed.delivery.message_id)
        if not self._dead_letter(parsed.delivery, reason):
            return Handled(UNSETTLED, reason=reason)
        return Handled("failed", reason=reason)

    def _dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Store a copy for earlyhelp.dead-letter; False when not even a minimal copy could be stored.

        The full copy first; if the database refuses it for what it holds, a minimal copy (body, reason,
        original exchange and key); if that fails too, the engine logs it and goes on, and the caller
        leaves the delivery to the broker's delivery limit. Only an outage is waited out here.
        """
        for build in (dead_letter_row, minimal_dead_letter_row):
            while True:
                try:
                    row = build(delivery, reason, self.clock())
                    with self.transaction() as store:
                        store.add_outbox(row)
                        store.flush(self.clock())
                    return True
                except Exception as error:  # noqa: BLE001 - sorted by cause below
                    if is_database_unavailable(error) and not self.should_stop():
                        self.sleep(1.0)
                        continue
                    if is_database_unavailable(error):
                        raise DatabaseUnavailable() from error
                    log.error("dead-letter copy not stored", copy=build.__name__, error=type(error).__name__,
                              message_id=delivery.message_id, routing_key=delivery.printable_routing_key)
                    break
        return False


class _HandlingFault(Exception):
    """A failure that is not a race and not an outage: something about the message or the code."""


class DatabaseUnavailable(Exception):
    """Raised only when stopping while the database is away: the deliveries stay unacked for redelivery."""
