"""Small number formats shared by the text and HTML renderers."""
from __future__ import annotations


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def change_text(row: dict, short: bool = False) -> str:
    """'+12 (+8.3%) on last year', or that last year's data is missing."""
    if row.get("previous_year") is None:
        return "-" if short else "no data for the same period last year"
    change, rel = row["change"], row["change_percent"]
    text = f"{change:+d}" + (f" ({rel:+.1f}%)" if rel is not None else "")
    return text if short else f"{text} on {row['previous_year']} in the same period last year"
