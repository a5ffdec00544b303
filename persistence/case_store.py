"""One transaction's reads and writes of cases: loads in bulk, writes in bulk, checks versions.

The engine handles a batch of deliveries in one transaction; this store reads every case and
processed id the batch needs with one query each and, on PostgreSQL, writes its updates and all new rows of
every table with one statement (`write_all`), so a batch costs a handful of round trips, not several per
message or per table (docs/engineering.md).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Connection, Table, and_, bindparam, func, insert, select, text, update

from earlyhelp.records.pseudonyms import PendingIdentifiers, store_key
from earlyhelp.workflows.case_flow import Case
from earlyhelp.workflows.sla_clock import Extension, Pause
from earlyhelp.workflows.sla_policy import Allowance
from earlyhelp.workflows.sla_tracking import StageClock

from .database import among
from .tables import (
    case_details, case_history, case_identifiers, cases, disclosures, linked_notifications, outbox,
    processed_messages, sla_clocks,
)


# A batch locks each of its children's identifier hashes (load_processed): up to this many locks, one each;
# past it, one lock for all intake. PostgreSQL's lock table holds max_locks_per_transaction (64) times
# max_connections (100) in all: 320 covers a default batch of 100 notifications with three identifiers
# each, and eight workers holding as many leave room for everything else.
CHILD_LOCKS_LIMIT = 320
# The key of the one lock for all intake: every batch with children takes it, shared beside its own locks,
# or alone and exclusive past CHILD_LOCKS_LIMIT. (Keys are bigints; the migrations lock 7243190.)
ALL_CHILDREN_LOCK = 7243191


class ConcurrencyConflict(Exception):
    """Another worker changed a case since this transaction read it: the batch is retried, not refused."""


_CASE_FIELDS = ("case_id", "notification_id", "state", "return_state", "version", "kind", "source", "priority",
                "district", "service", "team", "worker_id", "school_urn", "share_with_school", "received_at",
                "requested_paths", "school_informed_urn", "last_occurred_at")
_MUTABLE_FIELDS = ("state", "return_state", "version", "priority", "district", "service", "team", "worker_id",
                   "school_urn", "share_with_school", "requested_paths", "school_informed_urn", "last_occurred_at")
# Built once: an UPDATE made per call would be rebuilt and re-keyed for the statement cache each time.
_UPDATE_CASE = (update(cases)
                .where(and_(cases.c.case_id == bindparam("b_case_id"), cases.c.version == bindparam("b_version_read")))
                .values(updated_at=bindparam("b_updated_at"), **{f: bindparam(f"b_{f}") for f in _MUTABLE_FIELDS}))


class CaseStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._new_cases: list[dict] = []
        self._new_details: list[dict] = []
        self._changed: dict[str, tuple[Case, int]] = {}
        self._changed_details: dict[str, dict] = {}
        self._history: list[dict] = []
        self._outbox: list[dict] = []
        self._processed: list[dict] = []
        self._touched: dict[str, Case] = {}  # the latest object of every case this batch opened or changed
        self._new_ids: set[str] = set()
        self._identifiers = PendingIdentifiers()  # keyed hashes of the child's identifiers (subject access)
        self._disclosures: list[dict] = []
        self._linked: list[dict] = []

    # -- reads ----------------------------------------------------------------------------------
    def load_cases(self, case_ids) -> dict[str, Case]:
        loaded = self.load_cases_without_clocks(set(case_ids))
        for case_id, clocks in self.load_clocks(loaded).items():
            loaded[case_id].clocks = clocks
        return loaded

    def load_cases_without_clocks(self, case_ids) -> dict[str, Case]:
        """The cases' facts only, for the envelope of an SLA event."""
        ids = list(case_ids)
        if not ids:
            return {}
        rows = self.conn.execute(select(*[cases.c[f] for f in _CASE_FIELDS]).where(among(self.conn, cases.c.case_id, ids)))
        return {row.case_id: Case(**row._asdict()) for row in rows}

    def load_clocks(self, case_ids) -> dict[str, dict[str, StageClock]]:
        """The cases' SLA clocks, locked on PostgreSQL so the scanner (SKIP LOCKED) leaves them to us."""
        ids = sorted(case_ids)
        if not ids:
            return {}
        query = select(sla_clocks).where(among(self.conn, sla_clocks.c.case_id, ids)).order_by(sla_clocks.c.case_id,
                                                                               sla_clocks.c.stage)
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        found: dict[str, dict[str, StageClock]] = {}
        for row in self.conn.execute(query):
            found.setdefault(row.case_id, {})[row.stage] = clock_from_row(row)
        return found

    def load_details(self, case_id: str) -> dict | None:
        return self.conn.execute(
            select(case_details.c.notification).where(case_details.c.case_id == case_id)).scalar_one_or_none()

    def pseudonym_key(self) -> bytes:
        return store_key(self.conn)

    def find_identified(self, digests, closed_since: datetime) -> list[tuple[str, str, str]]:
        """(digest, kind, case_id) of every case holding one of `digests` that is open, or closed at or after
        `closed_since` (its last change, the close): one query for the whole batch (consumers/batch.py)."""
        digests = sorted(set(digests))
        if not digests:
            return []
        query = (select(case_identifiers.c.digest, case_identifiers.c.kind, case_identifiers.c.case_id)
                 .join(cases, cases.c.case_id == case_identifiers.c.case_id)
                 .where(among(self.conn, case_identifiers.c.digest, digests),
                        (cases.c.state != "closed") | (cases.c.last_occurred_at >= closed_since)))
        return [tuple(row) for row in self.conn.execute(query)]

    def load_processed(self, keys, lock_children=()) -> dict[str, tuple[str, str | None, datetime]]:
        """The processed ids among `keys`. With `lock_children` (the identifier hashes of the children this batch
        may open cases for), on PostgreSQL, the transaction first locks each hash until it ends.

        Without the locks two workers given notifications for one new child at the same instant would both
        look it up before either committed, find nothing and open two cases. With them the second waits for
        the first's commit, and its look-up (find_identified, a later statement with a fresh snapshot) finds
        the first's case. The locks go in this statement, the batch's first, so that they cost no round trip;
        they are taken in key order, before any row lock, so two batches cannot deadlock on them."""
        keys = list(set(keys))
        locks = _child_locks(lock_children) if self.conn.dialect.name == "postgresql" else []
        if not keys and not locks:
            return {}
        if locks:
            rows = self.conn.execute(_LOCK_THEN_LOAD_PROCESSED, {
                "lock_keys": [k for k, _ in locks], "lock_shared": [s for _, s in locks], "keys": keys})
        else:
            rows = self.conn.execute(select(processed_messages).where(among(self.conn, processed_messages.c.message_key, keys)))
        return {r.message_key: (r.content_hash, r.case_id, r.processed_at) for r in rows}

    # -- writes (held until flush) ----------------------------------------------------------------
    def add_case(self, case: Case, notification_json: dict, at: datetime, statistics: dict,
                 digests: dict[str, str] | None = None) -> None:
        """`statistics`: referral_source_code, social_care_status, placed_by_other_authority; `digests`: the
        child's identifier hashes when the caller already made them (the batch does, to find a known child)."""
        row = {f: getattr(case, f) for f in _CASE_FIELDS}
        row.update(opened_at=at, updated_at=at, **statistics)
        self._new_cases.append(row)
        self._new_ids.add(case.case_id)
        self._touched[case.case_id] = case
        self._new_details.append({"case_id": case.case_id, "notification": notification_json})
        self._identifiers.opened(self.conn, case.case_id, notification_json, digests)

    def change_case(self, case: Case, version_read: int) -> None:
        """Record that `case` changed; `version_read` is the version this transaction loaded (kept on first call)."""
        if case.case_id in self._changed:
            version_read = self._changed[case.case_id][1]
        self._changed[case.case_id] = (case, version_read)
        self._touched[case.case_id] = case

    def change_details(self, case_id: str, notification_json: dict) -> None:
        self._changed_details[case_id] = notification_json
        self._identifiers.changed(self.conn, case_id, notification_json)

    def add_history(self, row: dict) -> None:
        self._history.append(row)

    def add_outbox(self, row: dict) -> None:
        self._outbox.append(row)

    def add_disclosure(self, row: dict) -> None:
        """An event carrying personal data, staged in this transaction (earlyhelp.records.disclosures)."""
        self._disclosures.append(row)

    def add_linked(self, row: dict) -> None:
        """A notification kept with the open case of its child (linked_notifications)."""
        self._linked.append(row)

    def add_processed(self, key: str, content_hash: str, case_id: str | None, at: datetime) -> None:
        self._processed.append({"message_key": key, "content_hash": content_hash, "case_id": case_id,
                                "processed_at": at})

    def flush(self, at: datetime) -> None:
        """Write everything gathered; raises ConcurrencyConflict if a case moved under us.

        On PostgreSQL the case and clock updates and every new row of every table go in one statement
        (write_all): under load each round trip cost the handling thread 3-15 ms of waiting, whatever its
        work. Replaced identifiers and details changed after the batch that opened their case (both rare)
        go first, on their own."""
        conn = self.conn
        for row in self._new_cases:  # a case opened and moved in this batch: insert its final state
            row.update({f: getattr(self._touched[row["case_id"]], f) for f in _MUTABLE_FIELDS})
        changed = [(case, version_read) for case_id, (case, version_read) in self._changed.items()
                   if case_id not in self._new_ids]
        # Details changed in the batch that opened the case are inserted as they ended (the inserts come last).
        for row in self._new_details:
            row["notification"] = self._changed_details.pop(row["case_id"], row["notification"])
        if self._changed_details:
            conn.execute(update(case_details).where(case_details.c.case_id == bindparam("b_case_id"))
                         .values(notification=bindparam("b_notification")),
                         [{"b_case_id": k, "b_notification": v} for k, v in self._changed_details.items()])
        self._identifiers.delete_replaced(conn)
        new_clocks, changed_clocks = self._clocks_to_write()
        inserts = [
            (cases, self._new_cases), (case_details, self._new_details), (sla_clocks, new_clocks),
            (case_history, self._history), (outbox, self._outbox), (disclosures, self._disclosures),
            (linked_notifications, self._linked), (case_identifiers, self._identifiers.new_rows()),
            (processed_messages, self._processed)]
        case_rows = [{"case_id": case.case_id, "version_read": version_read, "updated_at": at,
                      **{f: getattr(case, f) for f in _MUTABLE_FIELDS}} for case, version_read in changed]
        if conn.dialect.name == "postgresql":
            # Each row still checks the version this transaction read.
            updated, _ = write_all(conn, inserts, [
                Update(cases, case_rows, key="case_id", also="cases.version = ({row}.item->>'version_read')::int"),
                Update(sla_clocks, _clock_update_rows(changed_clocks), key="id")])
        else:
            updated = conn.execute(_UPDATE_CASE, [{f"b_{k}": v for k, v in row.items()}
                                                  for row in case_rows]).rowcount if case_rows else 0
            if changed_clocks:
                self.update_clocks(changed_clocks)
            write_all(conn, inserts)
        if updated != len(changed):
            raise ConcurrencyConflict(f"{len(changed) - updated} of {len(changed)} cases moved")

    def _clocks_to_write(self) -> tuple[list[dict], list[dict]]:
        """The rows of the clocks that are new, and of those that moved."""
        new, changed = [], []
        for case in self._touched.values():
            for clock in case.clocks.values():
                if clock.dirty:
                    (new if clock.id is None else changed).append(clock_row(case.case_id, clock))
        return new, changed

    def update_clocks(self, rows: list[dict]) -> None:
        """Write back clocks by id (the flow's moves, or the scanner's warned_at / breached_at)."""
        if self.conn.dialect.name == "postgresql":
            write_all(self.conn, [], [Update(sla_clocks, _clock_update_rows(rows), key="id")])
            return
        columns = [c for c in rows[0] if c not in ("id", "case_id", "stage")]
        self.conn.execute(
            update(sla_clocks).where(sla_clocks.c.id == bindparam("b_id"))
            .values(**{c: bindparam(f"b_{c}") for c in columns}),
            [{"b_id": r["id"], **{f"b_{c}": r[c] for c in columns}} for r in rows])


def pending_outbox(conn: Connection) -> tuple[int, datetime | None]:
    """How many outbox rows wait to be published, and when the oldest was stored (the partial index)."""
    count, oldest = conn.execute(select(func.count(), func.min(outbox.c.created_at))
                                 .where(outbox.c.published_at.is_(None))).one()
    return count, oldest


def bulk_insert(conn: Connection, table, rows: list[dict]) -> None:
    """Insert rows into one table (see write_all)."""
    write_all(conn, [(table, rows)])


@dataclass
class Update:
    """Rows of `table` to update, each found by `key`: each row's keys that are columns are set from it;
    keys that are not (a version read) are for `also`, a further condition over the table and the row's
    JSON, `{row}.item` (write_all names the row set)."""
    table: Table
    rows: list[dict]
    key: str
    also: str = ""


def write_all(conn: Connection, inserts: list[tuple[Table, list[dict]]], updates: list[Update] = ()) -> list[int]:
    """Insert every table's rows and make every update; returns the number of rows each update changed.

    On PostgreSQL all of it is one statement, whatever the number of tables and rows: each table's rows
    go as one JSON array (orjson, in C) that PostgreSQL turns into rows with json_populate_recordset, and
    each INSERT and UPDATE is a data-modifying WITH clause. Every clause works on the same snapshot, so no
    two may touch one row (a batch updates cases it loaded and inserts new ones). Foreign keys are checked
    when the statement ends, so a case and its history can come in one. Rows of a table share their keys
    (columns left out take the column's server default). COPY per table, before, cost two round trips per
    table and ~7 µs of Python per row (psycopg's write_row); a statement per update, a round trip each.

    An update's rows are made once (a MATERIALIZED CTE) and the table is narrowed by `key = ANY(ids)`, the
    index's own condition: joined to the function directly, the planner once hash-joined on the version,
    alike in every row, and made each JSON row again for each of the 50,000 pairs (450 ms for a batch of
    100 among 600 cases). Elsewhere (SQLite) the inserts only, a statement per table.
    """
    inserts = [(table, rows) for table, rows in inserts if rows]
    given, updates = list(updates), [u for u in updates if u.rows]
    if conn.dialect.name != "postgresql":
        if updates:
            raise NotImplementedError("write_all updates on PostgreSQL only; CaseStore updates SQLite itself")
        for table, rows in inserts:
            conn.execute(insert(table), rows)
        return [0] * len(given)
    if not inserts and not updates:
        return [0] * len(given)
    clauses, params = [], []
    for i, u in enumerate(updates):
        column = u.table.c[u.key]
        sets = ", ".join(f"{c.name} = b{i}.{c.name}" for c in u.table.columns if c.name in u.rows[0] and c.name != u.key)
        array = "bigint[]" if column.type.python_type is int else "text[]"
        also = f" AND {u.also.format(row=f'b{i}')}" if u.also else ""
        clauses.append(f"b{i} AS MATERIALIZED (SELECT r.*, e.item FROM json_array_elements(%s::json) AS e(item), "
                       f"LATERAL json_populate_record(NULL::{u.table.name}, e.item) AS r)")
        clauses.append(f"u{i} AS (UPDATE {u.table.name} SET {sets} FROM b{i} WHERE {u.table.name}.{u.key} = b{i}.{u.key} "
                       f"AND {u.table.name}.{u.key} = ANY(%s::{array}){also} RETURNING 1)")
        params += [_json_rows(u.rows), [row[u.key] for row in u.rows]]
    for i, (table, rows) in enumerate(inserts):
        names = ", ".join(c.name for c in table.columns if c.name in rows[0])
        clauses.append(f"w{i} AS (INSERT INTO {table.name} ({names}) SELECT {names} "
                       f"FROM json_populate_recordset(NULL::{table.name}, %s::json))")
        params.append(_json_rows(rows))
    # Data-modifying clauses run to the end whether or not the final SELECT reads them.
    counts = ", ".join(f"(SELECT count(*) FROM u{i})" for i in range(len(updates))) or "0"
    sql = f"WITH {', '.join(clauses)} SELECT {counts}"
    # Inserts alone are prepared: from the sixth run PostgreSQL reuses a generic plan instead of planning
    # a dozen CTEs again (profile_batch.py --statements, alone: an intake batch of 100 took 22.7-26.1 ms,
    # now 17.3-18.6). Updates are not: their `key = ANY(ids)` must keep the index scan that a generic plan
    # made on small tables loses (database.make_engine). Sessions prepare nothing else.
    with _prepared(conn, not updates):
        row = iter(conn.exec_driver_sql(sql, tuple(params)).one())
    return [int(next(row)) if u.rows else 0 for u in given]


@contextmanager
def _prepared(conn: Connection, prepare: bool):
    """psycopg prepares what runs inside this on its first run (when `prepare`), and nothing more after."""
    if not prepare:
        yield
        return
    driver = conn.connection.driver_connection  # psycopg's: write_all comes here on PostgreSQL only
    before, driver.prepare_threshold = driver.prepare_threshold, 0
    try:
        yield
    finally:
        driver.prepare_threshold = before


# The locks first (a MATERIALIZED CTE, read by the WHERE clause's one-time filter, so it runs before the
# scan), in the order given; then the processed ids.
_LOCK_THEN_LOAD_PROCESSED = text("""
    WITH locked AS MATERIALIZED (
        SELECT CASE WHEN t.shared THEN pg_advisory_xact_lock_shared(t.k) ELSE pg_advisory_xact_lock(t.k) END
        FROM unnest(CAST(:lock_keys AS bigint[]), CAST(:lock_shared AS boolean[])) WITH ORDINALITY AS t(k, shared, n)
        ORDER BY t.n)
    SELECT message_key, content_hash, case_id, processed_at FROM processed_messages
    WHERE message_key = ANY(CAST(:keys AS varchar[])) AND (SELECT count(*) FROM locked) >= 0
""").columns(processed_messages.c.message_key, processed_messages.c.content_hash, processed_messages.c.case_id,
             processed_messages.c.processed_at)


def _child_locks(digests) -> list[tuple[int, bool]]:
    """(lock key, shared) for a batch's child identifier hashes, in the order to take them: the lock for all
    intake shared, then one per hash (its first 63 bits), sorted; past CHILD_LOCKS_LIMIT hashes, the lock for
    all intake alone, exclusive. Two hashes sharing a key only make one batch wait for another."""
    keys = sorted({int(d[:16], 16) >> 1 for d in digests})
    if not keys:
        return []
    if len(keys) > CHILD_LOCKS_LIMIT:
        return [(ALL_CHILDREN_LOCK, False)]
    return [(ALL_CHILDREN_LOCK, True), *((k, False) for k in keys)]


def _clock_update_rows(rows: list[dict]) -> list[dict]:
    """A clock's row as an update gives it: by id, without the columns that never change."""
    return [{k: v for k, v in r.items() if k not in ("case_id", "stage")} for r in rows]


def _json_rows(rows: list[dict]) -> str:
    return orjson.dumps(rows, default=_json_value, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()


def _json_value(value):
    """What orjson leaves to us: datetimes (an aware one only, as UtcDateTime insists) and bytes (bytea's hex
    form; outbox bodies)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; every time carries a zone")
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    raise TypeError(f"cannot store a {type(value).__name__} in a JSON row")


def clock_from_row(row) -> StageClock:
    return StageClock(
        stage=row.stage, priority=row.priority, allowance=Allowance(amount=row.allowance_amount,
                                                                    unit=row.allowance_unit),
        started_at=row.started_at, pauses=[Pause(_time(a), _time(b)) for a, b in row.pauses],
        extensions=[Extension(e["amount"], e["unit"]) for e in (row.extensions or ())],
        policy_version=row.policy_version,
        due_at=row.due_at, warning_at=row.warning_at, stopped_at=row.stopped_at, warned_at=row.warned_at,
        breached_at=row.breached_at, id=row.id)


def clock_row(case_id: str, clock: StageClock) -> dict:
    row = {
        "case_id": case_id, "stage": clock.stage, "priority": clock.priority,
        "allowance_amount": clock.allowance.amount, "allowance_unit": clock.allowance.unit,
        "started_at": clock.started_at,
        "pauses": [[p.paused_at.isoformat(), p.resumed_at.isoformat() if p.resumed_at else None]
                   for p in clock.pauses],
        "extensions": [{"amount": e.amount, "unit": e.unit} for e in clock.extensions],
        "policy_version": clock.policy_version,
        "due_at": clock.due_at, "warning_at": clock.warning_at, "stopped_at": clock.stopped_at,
        "warned_at": clock.warned_at, "breached_at": clock.breached_at, "next_check_at": clock.next_check_at,
    }
    if clock.id is not None:
        row["id"] = clock.id
    return row


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
