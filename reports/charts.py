"""Inline SVG charts drawn in Python: horizontal bars, stacked shares, weekly lines, columns.

No JavaScript and nothing fetched: each function returns an <svg> element sized in viewBox units, so
the page scales it to its column. Every bar is a <rect class="bar"> with a <title> (the browser's own
tooltip), and every chart has a text label on each bar, so it reads printed in black and white too.
"""
from __future__ import annotations

from html import escape

INK, MUTED, GRID = "#1f2933", "#616e7c", "#e4e7eb"
PALETTE = {"primary": "#1b6f8a", "secondary": "#7fb8c9", "good": "#2e8b57", "late": "#d9822b",
           "overdue": "#c0392b", "pending": "#b8c2cc", "accent": "#6a4c93"}
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\""


def _text(x: float, y: float, content: str, *, size: int = 13, anchor: str = "start", fill: str = INK,
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}" {FONT}>{escape(content)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str, rx: float = 3) -> str:
    return (f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" rx="{rx}" '
            f'fill="{fill}"><title>{escape(tip)}</title></rect>')


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def horizontal_bars(items: list[tuple[str, float, str]], label: str, color: str = PALETTE["primary"],
                    width: int = 640, label_width: int = 230) -> str:
    """One bar per (label, value, text beside the bar), longest bar = the largest value."""
    row, bar_h, top = 30, 20, 6
    height = top + row * max(len(items), 1) + 4
    biggest = max((v for _, v, _ in items), default=0) or 1
    room = width - label_width - 110
    body = []
    for i, (name, value, note) in enumerate(items):
        y = top + i * row
        w = room * value / biggest
        body.append(_text(label_width - 10, y + 15, name, anchor="end"))
        body.append(f'<line x1="{label_width}" y1="{y + bar_h + 4}" x2="{width - 10}" y2="{y + bar_h + 4}" '
                    f'stroke="{GRID}"/>')
        body.append(_rect(label_width, y, w, bar_h, color, f"{name}: {note}"))
        body.append(_text(label_width + w + 8, y + 15, note, fill=MUTED, size=12))
    return _svg(width, height, body, label)


def stacked_shares(rows: list[tuple[str, list[tuple[str, float, str]]]], label: str,
                   width: int = 640, label_width: int = 150) -> str:
    """Each row a 100% bar split into coloured segments (name, value, colour), with a legend below."""
    row, bar_h, top = 34, 22, 6
    room = width - label_width - 20
    body, legend = [], {}
    for i, (name, segments) in enumerate(rows):
        y = top + i * row
        total = sum(v for _, v, _ in segments)
        body.append(_text(label_width - 10, y + 16, name, anchor="end"))
        body.append(f'<rect x="{label_width}" y="{y}" width="{room}" height="{bar_h}" rx="3" fill="{GRID}"/>')
        x = float(label_width)
        for seg_name, value, color in segments:
            legend.setdefault(seg_name, color)
            if not total or not value:
                continue
            w = room * value / total
            share = 100 * value / total
            body.append(_rect(x, y, w, bar_h, color, f"{name}, {seg_name}: {value:g} ({share:.0f}%)", rx=0))
            if w > 34:
                body.append(_text(x + w / 2, y + 16, f"{share:.0f}%", anchor="middle", fill="#ffffff", size=12,
                                  weight="600"))
            x += w
        if not total:
            body.append(_text(label_width + room / 2, y + 16, "nothing measured", anchor="middle", fill=MUTED,
                              size=12))
    y = top + row * len(rows) + 8
    x = float(label_width)
    for seg_name, color in legend.items():
        step = 30 + 7 * len(seg_name)
        if x + step > width and x > label_width:  # wrap the legend rather than run off the chart
            x, y = float(label_width), y + 18
        body.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="12" rx="2" fill="{color}"/>')
        body.append(_text(x + 17, y + 11, seg_name, size=12, fill=MUTED))
        x += step
    return _svg(width, y + 20, body, label)


def grouped_bars(groups: list[tuple[str, list[tuple[str, float | None, str, str]]]], label: str,
                 width: int = 1100, label_width: int = 190, maximum: float = 100.0) -> str:
    """Per group (a district), one thin bar per series (a stage): (series, value, note, colour).

    A value of None (nothing measured) leaves a gap with a dash, so "none measured" never looks like 0%.
    """
    bar_h, gap, top = 12, 3, 6
    series = max((len(items) for _, items in groups), default=1)
    row = series * (bar_h + gap) + 12
    room = width - label_width - 150
    body = []
    for i, (name, items) in enumerate(groups):
        y0 = top + i * row
        body.append(_text(label_width - 10, y0 + row / 2 + 2, name, anchor="end"))
        body.append(f'<line x1="{label_width}" y1="{y0 + row - 5}" x2="{width - 10}" y2="{y0 + row - 5}" '
                    f'stroke="{GRID}"/>')
        for j, (series_name, value, note, color) in enumerate(items):
            y = y0 + j * (bar_h + gap)
            if value is None:
                body.append(_text(label_width + 4, y + 10, f"{series_name}: -", size=10.5, fill=MUTED))
                continue
            w = room * value / maximum
            body.append(_rect(label_width, y, w, bar_h, color, f"{name}, {series_name}: {note}", rx=2))
            body.append(_text(label_width + w + 6, y + 10, f"{series_name} {note}", size=10.5, fill=MUTED))
    return _svg(width, top + row * len(groups) + 4, body, label)


def weekly_line(points: list[tuple[str, int]], label: str, color: str = PALETTE["accent"],
                width: int = 640, height: int = 230) -> str:
    """A line through (week starting, count) with a dot and its value on each week."""
    left, right, top, bottom = 40, 34, 16, 46
    inner_w, inner_h = width - left - right, height - top - bottom
    biggest = max((v for _, v in points), default=0)
    scale_top = max(biggest, 1)
    step = inner_w / max(len(points) - 1, 1)
    body = []
    for tick in sorted({0, scale_top // 2, scale_top}):
        y = top + inner_h * (1 - tick / scale_top)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y + 4, str(tick), anchor="end", size=11, fill=MUTED))
    coords = [(left + i * step if len(points) > 1 else left + inner_w / 2,
               top + inner_h * (1 - v / scale_top)) for i, (_, v) in enumerate(points)]
    if len(coords) > 1:
        area = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        body.append(f'<polygon points="{left:.1f},{top + inner_h:.1f} {area} {coords[-1][0]:.1f},{top + inner_h:.1f}" '
                    f'fill="{color}" fill-opacity="0.12"/>')
        body.append(f'<polyline class="line" points="{area}" fill="none" stroke="{color}" stroke-width="2.5" '
                    f'stroke-linejoin="round"/>')
    every = max(1, len(points) // 9)  # label at most about nine weeks, so the dates never overlap
    for i, ((week, value), (x, y)) in enumerate(zip(points, coords)):
        body.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}">'
                    f'<title>week starting {escape(week)}: {value}</title></circle>')
        body.append(_text(x, y - 8, str(value), anchor="middle", size=11, fill=INK))
        if i % every == 0:
            body.append(_text(x, height - bottom + 18, _short_date(week), anchor="middle", size=11, fill=MUTED))
    body.append(_text(left + inner_w / 2, height - 6, "week starting", anchor="middle", size=11, fill=MUTED))
    return _svg(width, height, body, label)


def columns(items: list[tuple[str, int]], label: str, color: str = PALETTE["late"], width: int = 640,
            height: int = 210) -> str:
    """Vertical columns (label, value), value above each column."""
    left, top, bottom = 20, 22, 40
    inner_h = height - top - bottom
    slot = (width - 2 * left) / max(len(items), 1)
    biggest = max((v for _, v in items), default=0) or 1
    body = [f'<line x1="{left}" y1="{top + inner_h}" x2="{width - left}" y2="{top + inner_h}" stroke="{GRID}"/>']
    for i, (name, value) in enumerate(items):
        h = inner_h * value / biggest
        x = left + i * slot + slot * 0.2
        body.append(_rect(x, top + inner_h - h, slot * 0.6, h, color, f"{name}: {value}"))
        body.append(_text(x + slot * 0.3, top + inner_h - h - 6, str(value), anchor="middle", size=12))
        body.append(_text(x + slot * 0.3, height - bottom + 20, name, anchor="middle", size=12, fill=MUTED))
    return _svg(width, height, body, label)


def _short_date(iso: str) -> str:
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    year, month, day = iso.split("-")
    return f"{int(day)} {months[int(month) - 1]}"
