"""Keyed hashes of a child's identifiers: how a child's cases are found without a plaintext search.

Each case keeps HMAC-SHA256 digests (key: `EARLYHELP_PSEUDONYM_KEY`, 64 hex digits) of the child's
NHS number, UPN, and given name + family name + date of birth (or expected date of birth). Erasing the
case deletes them, so an erased case leaves nothing to find or match.

Normal forms (the same for what the engine stores and what an operator types):
- NHS number: the 10 digits, spaces removed.
- UPN: trimmed, upper case.
- name and date: Unicode NFKC, runs of white space as one space, trimmed, case-folded; given name and
  family name joined by one space (so "Mary Ann" + "Smith" and `--name "Mary Ann Smith"` agree), then
  the ISO date. Each kind hashes under its own label, so equal text of two kinds never collides.

Where the key is not set, `serve` and the tools use one kept in a file outside the database: beside an
SQLite file (`<file>.pseudonym-key`), or `$XDG_CONFIG_HOME/earlyhelp/pseudonym-key` (default
`~/.config`) for PostgreSQL. It is made once (mode 0600), and where it is is said once on stderr.
Several machines sharing one PostgreSQL must share one key: set `EARLYHELP_PSEUDONYM_KEY`.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sys
import threading
import unicodedata
from datetime import date
from pathlib import Path

KEY_VARIABLE = "EARLYHELP_PSEUDONYM_KEY"
KINDS = ("nhs_number", "upn", "name_dob")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_SPACES = re.compile(r"\s+")


class KeyProblem(Exception):
    """The pseudonym key is malformed or cannot be read or made; the message names where."""


# -- normal forms (pure) ------------------------------------------------------------------------------
def normal_nhs_number(value: str) -> str:
    return "".join(value.split())


def normal_upn(value: str) -> str:
    return value.strip().upper()


def normal_name(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def normal_name_dob(full_name: str, born: date | str) -> str:
    day = born if isinstance(born, str) else born.isoformat()
    return f"{normal_name(full_name)}|{day}"


def digest(key: bytes, kind: str, normal_value: str) -> str:
    """HMAC-SHA256 of `kind:value` under `key`, as 64 hex digits."""
    return hmac.new(key, f"{kind}:{normal_value}".encode(), hashlib.sha256).hexdigest()


def child_digests(key: bytes, notification: dict) -> dict[str, str]:
    """The digests of a stored notification's child identifiers that it has: {kind: hex digest}."""
    child = (notification or {}).get("child") or {}
    found: dict[str, str] = {}
    if child.get("nhs_number"):
        found["nhs_number"] = digest(key, "nhs_number", normal_nhs_number(child["nhs_number"]))
    if child.get("upn"):
        found["upn"] = digest(key, "upn", normal_upn(child["upn"]))
    born = child.get("date_of_birth") or child.get("expected_date_of_birth")
    if child.get("given_name") and child.get("family_name") and born:
        full = f"{child['given_name']} {child['family_name']}"
        found["name_dob"] = digest(key, "name_dob", normal_name_dob(full, str(born)))
    return found


def identifier_rows(key: bytes, case_id: str, notification: dict) -> list[dict]:
    return rows_of(case_id, child_digests(key, notification))


def rows_of(case_id: str, digests: dict[str, str]) -> list[dict]:
    """`case_identifiers` rows for a case's digests ({kind: digest})."""
    return [{"case_id": case_id, "kind": kind, "digest": value} for kind, value in digests.items()]


# -- the key ------------------------------------------------------------------------------------------
_cache: dict[tuple[str | None, str], bytes] = {}
_lock = threading.Lock()


def key_file_for(database_url: str) -> Path:
    """Where the key is kept when EARLYHELP_PSEUDONYM_KEY is unset: never inside the database."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1] if ":///" in database_url else ""
        path = path.split("?", 1)[0]
        if path and path != ":memory:":
            return Path(path).with_name(Path(path).name + ".pseudonym-key")
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "earlyhelp" / "pseudonym-key"


def parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    if not _HEX64.match(text):
        raise KeyProblem(f"{where}: the pseudonym key must be 64 hex digits")
    return bytes.fromhex(text)


def pseudonym_key(database_url: str, announce=None) -> bytes:
    """The key from EARLYHELP_PSEUDONYM_KEY, else from (or made in) the key file for this database."""
    configured = os.environ.get(KEY_VARIABLE) or None
    place = str(key_file_for(database_url)) if configured is None else ""
    cached = _cache.get((configured, place))
    if cached is not None:
        return cached
    with _lock:
        if configured is not None:
            key = parse_key(configured, KEY_VARIABLE)
        else:
            key = _key_from_file(Path(place), announce or _say)
        _cache[(configured, place)] = key
        return key


def _key_from_file(path: Path, announce) -> bytes:
    """Read the key file, or make it: written whole to a temporary file and linked into place, so a second
    process making one at the same moment reads the first one's key, never half of it."""
    try:
        if path.exists():
            return parse_key(path.read_text(encoding="ascii", errors="replace"), str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        made = secrets.token_hex(32)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(made + "\n")
        try:
            os.link(temporary, path)  # fails if another process linked its key first
        except FileExistsError:
            return parse_key(path.read_text(encoding="ascii", errors="replace"), str(path))
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:
        raise KeyProblem(f"{path}: cannot read or make the pseudonym key ({error.strerror or error}); "
                         f"set {KEY_VARIABLE}") from None
    announce(f"EARLYHELP_PSEUDONYM_KEY is not set: made a new pseudonym key in {path} (keep it, and back it "
             "up apart from the database; without it no child's cases can be found by identifier)")
    return bytes.fromhex(made)


def announce_key_source(database_url: str) -> None:
    """Say once, on stderr, where the key comes from (serve and the tools call this at start)."""
    if os.environ.get(KEY_VARIABLE):
        pseudonym_key(database_url)
        return
    path = key_file_for(database_url)
    existed = path.exists()
    pseudonym_key(database_url)
    if existed:
        _say(f"EARLYHELP_PSEUDONYM_KEY is not set: using the pseudonym key in {path}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def store_key(conn) -> bytes:
    """The key for the database this connection is on (the store's hook; cached after the first call)."""
    return pseudonym_key(conn.engine.url.render_as_string(hide_password=True))


class PendingIdentifiers:
    """A batch's identifier hashes, written in CaseStore.flush: one DELETE (only for cases whose details
    changed), the new rows with the batch's other inserts, a few HMACs per message, no query per message."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {}
        self.replaced: set[str] = set()
        self._key: bytes | None = None

    def opened(self, conn, case_id: str, notification: dict, digests: dict[str, str] | None = None) -> None:
        if digests is None:
            if self._key is None:
                self._key = store_key(conn)
            digests = child_digests(self._key, notification)
        self.rows[case_id] = rows_of(case_id, digests)

    def changed(self, conn, case_id: str, notification: dict) -> None:
        self.opened(conn, case_id, notification)
        self.replaced.add(case_id)

    def delete_replaced(self, conn) -> None:
        """Remove the stored hashes of cases whose details changed (new_rows holds their new ones)."""
        from sqlalchemy import delete

        from earlyhelp.persistence.tables import case_identifiers

        if self.replaced:
            conn.execute(delete(case_identifiers).where(case_identifiers.c.case_id.in_(sorted(self.replaced))))

    def new_rows(self) -> list[dict]:
        return [row for rows in self.rows.values() for row in rows]
