"""The store in memory: the `Store` of persistence/store.py kept in dictionaries, for fast tests of the
handlers and the batch logic (tests/unit/test_handlers.py) and anything else that wants no database.

`MemoryDatabase` holds what was committed; `transaction()` gives a `MemoryStore` whose writes reach the
database only when the block ends without an exception, as a SQL transaction's would. Like CaseStore, flush
raises ConcurrencyConflict when a case moved since this transaction read it.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

from earlyhelp.records.pseudonyms import child_digests
from earlyhelp.workflows.case_flow import Case

from .case_store import ConcurrencyConflict


class MemoryDatabase:
    def __init__(self, key: bytes = bytes(range(32))) -> None:
        self.key = key  # the pseudonym key (a fixed one for tests)
        self.cases: dict[str, Case] = {}
        self.details: dict[str, dict] = {}
        self.processed: dict[str, tuple[str, str | None, datetime]] = {}
        self.history: list[dict] = []
        self.outbox: list[dict] = []
        self.disclosures: list[dict] = []
        self.identifiers: dict[str, dict[str, str]] = {}  # case_id -> {kind: digest}
        self.linked: list[dict] = []
        self.identity_lookups = 0  # find_identified calls: one per batch with notifications to match
        self.transactions = 0  # committed

    @contextmanager
    def transaction(self) -> Iterator[MemoryStore]:
        store = MemoryStore(self)
        yield store
        store.commit()
        self.transactions += 1


class MemoryStore:
    def __init__(self, database: MemoryDatabase | None = None) -> None:
        self.database = database if database is not None else MemoryDatabase()
        self.new_cases: dict[str, Case] = {}
        self.new_details: dict[str, dict] = {}
        self.changed: dict[str, tuple[Case, int]] = {}
        self.changed_details: dict[str, dict] = {}
        self.history: list[dict] = []
        self.outbox: list[dict] = []
        self.disclosures: list[dict] = []
        self.linked: list[dict] = []
        self.processed: dict[str, tuple[str, str | None, datetime]] = {}
        self._flushed = False

    # -- reads (copies: a transaction's changes reach the database only at commit) ------------------
    def load_processed(self, keys, lock_children=()) -> dict[str, tuple[str, str | None, datetime]]:
        # lock_children: nothing to lock, the memory database has one transaction at a time.
        return {k: self.database.processed[k] for k in set(keys) if k in self.database.processed}

    def load_cases(self, case_ids) -> dict[str, Case]:
        return {cid: copy.deepcopy(self.database.cases[cid]) for cid in set(case_ids) if cid in self.database.cases}

    def load_details(self, case_id: str) -> dict | None:
        return copy.deepcopy(self.database.details.get(case_id))

    def pseudonym_key(self) -> bytes:
        return self.database.key

    def find_identified(self, digests, closed_since: datetime) -> list[tuple[str, str, str]]:
        wanted, db = set(digests), self.database
        db.identity_lookups += 1
        return [(d, kind, cid) for cid, found in db.identifiers.items() for kind, d in found.items()
                if d in wanted and (db.cases[cid].state != "closed" or (
                    db.cases[cid].last_occurred_at is not None and db.cases[cid].last_occurred_at >= closed_since))]

    # -- writes (staged) -------------------------------------------------------------------------------
    def add_case(self, case: Case, notification_json: dict, at: datetime, statistics: dict,
                 digests: dict[str, str] | None = None) -> None:
        self.new_cases[case.case_id] = case
        self.new_details[case.case_id] = notification_json

    def change_case(self, case: Case, version_read: int) -> None:
        if case.case_id in self.new_cases:
            self.new_cases[case.case_id] = case
            return
        if case.case_id in self.changed:
            version_read = self.changed[case.case_id][1]
        self.changed[case.case_id] = (case, version_read)

    def change_details(self, case_id: str, notification_json: dict) -> None:
        if case_id in self.new_details:
            self.new_details[case_id] = notification_json
        else:
            self.changed_details[case_id] = notification_json

    def add_history(self, row: dict) -> None:
        self.history.append(row)

    def add_outbox(self, row: dict) -> None:
        self.outbox.append(row)

    def add_disclosure(self, row: dict) -> None:
        self.disclosures.append(row)

    def add_linked(self, row: dict) -> None:
        self.linked.append(row)

    def add_processed(self, key: str, content_hash: str, case_id: str | None, at: datetime) -> None:
        self.processed[key] = (content_hash, case_id, at)

    def flush(self, at: datetime) -> None:
        """Check what this transaction would write, as CaseStore's flush does; commit() writes it."""
        moved = [cid for cid, (_, read) in self.changed.items()
                 if cid not in self.database.cases or self.database.cases[cid].version != read]
        if moved:
            raise ConcurrencyConflict(f"{len(moved)} of {len(self.changed)} cases moved")
        taken = (set(self.new_cases) & set(self.database.cases)) | (set(self.processed) & set(self.database.processed))
        if taken:
            raise ConcurrencyConflict(f"already stored by another transaction: {sorted(taken)}")
        self._flushed = True

    def commit(self) -> None:
        if not self._flushed:
            return  # nothing flushed: nothing written, as a transaction that staged and never flushed
        db = self.database
        db.cases.update({cid: copy.deepcopy(case) for cid, case in self.new_cases.items()})
        db.cases.update({cid: copy.deepcopy(case) for cid, (case, _) in self.changed.items()})
        db.details.update(copy.deepcopy(self.new_details))
        db.details.update(copy.deepcopy(self.changed_details))
        db.history += self.history
        db.outbox += self.outbox
        db.disclosures += self.disclosures
        db.linked += self.linked
        for cid, details in {**self.new_details, **self.changed_details}.items():
            db.identifiers[cid] = child_digests(db.key, details)
        db.processed.update(self.processed)
