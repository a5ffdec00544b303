"""Text a sender wrote, made safe to print on an operator's terminal.

Ids, actor names, teams, districts, dead-letter reasons and bodies come from outside. Printed raw, a
newline in an actor id writes a fake line into `earlyhelp case`'s timeline, and an escape sequence
(ESC [ ...) moves the cursor, recolours or retitles the operator's terminal. `escape` shows every
control character as a visible escape instead: C0 (including \\n, \\r, \\t and ESC), DEL and C1, plus
the Unicode line separators and bidirectional overrides, which can also fake a line or reorder what
a person reads. Everything else, accents and other scripts included, is left as written.

Backslashes are left alone: doubling them would make every Windows path and regular expression
harder to read, and a literal "\\n" typed by a sender cannot move the cursor.

JSON output needs nothing more: json.dumps already escapes control characters.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0, DEL, C1; U+2028/2029 (line and paragraph separators); bidi embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(value) -> str:
    """`value` as text with its control characters shown as escapes (None prints as '')."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(_visible, text)


def table(rows: list, left: int = 1, rule: bool = False) -> list[str]:
    """Rows of cells (the first is the header) as lines of columns two spaces apart, every cell escaped.

    The first `left` columns are aligned left, the rest (numbers) right; `rule` underlines the header
    with dashes. Trailing spaces are dropped.
    """
    cells = [[escape(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i < left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if rule and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def utc_minute(value) -> str:
    """An instant as the tools print it ("2026-11-25 12:00 UTC"); "-" for none; ISO text is read first."""
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)
