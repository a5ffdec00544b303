"""What the handlers and the batch need of the database: the `Store` of one transaction, and `Transactions`.

`CaseStore` (persistence/case_store.py) is the SQL store; `MemoryStore` (persistence/memory_store.py) keeps
the same in dictionaries, so the handlers and the batch logic are tested in milliseconds without a server.
A store reads in bulk and holds every write until `flush`, which writes them and raises ConcurrencyConflict
when a case moved since it was read; the transaction around it commits or rolls back everything.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Callable, Iterable, Iterator, Protocol

from sqlalchemy.engine import Engine

from earlyhelp.workflows.case_flow import Case


class Store(Protocol):
    """One transaction's reads and staged writes of cases, their history, the outbox and processed ids."""

    def load_processed(self, keys: Iterable[str], lock_children: Iterable[str] = ()
                       ) -> dict[str, tuple[str, str | None, datetime]]: ...
    def load_cases(self, case_ids: Iterable[str]) -> dict[str, Case]: ...
    def load_details(self, case_id: str) -> dict | None: ...
    def pseudonym_key(self) -> bytes: ...
    def find_identified(self, digests: Iterable[str], closed_since: datetime) -> list[tuple[str, str, str]]: ...
    def add_case(self, case: Case, notification_json: dict, at: datetime, statistics: dict,
                 digests: dict[str, str] | None = None) -> None: ...
    def change_case(self, case: Case, version_read: int) -> None: ...
    def change_details(self, case_id: str, notification_json: dict) -> None: ...
    def add_history(self, row: dict) -> None: ...
    def add_outbox(self, row: dict) -> None: ...
    def add_disclosure(self, row: dict) -> None: ...
    def add_linked(self, row: dict) -> None: ...
    def add_processed(self, key: str, content_hash: str, case_id: str | None, at: datetime) -> None: ...
    def flush(self, at: datetime) -> None: ...


# Opens one transaction and gives its store; leaving the block commits, an exception rolls back.
Transactions = Callable[[], AbstractContextManager[Store]]


def sql_transactions(engine: Engine) -> Transactions:
    """Transactions on `engine`, each with its CaseStore."""
    from .case_store import CaseStore

    @contextmanager
    def transaction() -> Iterator[Store]:
        with engine.begin() as conn:
            yield CaseStore(conn)

    return transaction
