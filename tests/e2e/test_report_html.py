"""The HTML report opened in headless Chromium: the charts are drawn, with bars of real size, offline."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.clock import child_env
from tests.e2e.conftest import earlyhelp_command

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
# charts.PALETTE["secondary"]: the district chart's bars (the header and tiles use another blue).
BAR_COLOUR = (0x7F, 0xB8, 0xC9)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (.ci/run installs it)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          timeout=120, check=True)


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, stride, channels)]


def test_the_html_report_renders_its_charts_in_chromium(tmp_path):
    database = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    # A realistic stream through the real engine (in one process, on kombu's memory transport).
    subprocess.run([*earlyhelp_command(), "demo", "--broker", "memory://", "--database", database, "--days", "21",
                    "--per-day", "8"], check=True, capture_output=True, timeout=300, env=child_env(dict(os.environ)))
    report = tmp_path / "report.html"
    subprocess.run([*earlyhelp_command(), "report", "--format", "html", "--output", str(report), "--from",
                    "2000-01-01"], check=True, capture_output=True, timeout=120,
                   env=child_env({**os.environ, "EARLYHELP_DATABASE_URL": database}))
    html = report.read_text()
    assert "<script" not in html and "src=" not in html and "@import" not in html  # one file, nothing fetched

    dom = chromium(tmp_path, "--dump-dom", report.as_uri()).stdout.decode()
    charts = re.findall(r'<svg class="chart"[^>]*aria-label="([^"]+)"', dom)
    assert {"Notifications by source", "Notifications by district", "Step-downs from social care per week",
            "Timeliness by stage", "Unallocated cases by age"} <= set(charts)
    widths = [float(w) for w in re.findall(r'<rect class="bar"[^>]*width="([\d.]+)"', dom)]
    assert len(widths) > 20 and sum(w > 0 for w in widths) > 20
    assert re.search(r'<polyline class="line" points="[\d., ]+"', dom)

    shot = tmp_path / "report.png"
    chromium(tmp_path, "--window-size=1280,3400", f"--screenshot={shot}", report.as_uri())
    width, height, pixels = read_png(shot)
    assert (width, height) == (1280, 3400)
    # The district chart's bars are painted: thousands of pixels of their colour (allowing for anti-aliasing).
    painted = sum(1 for p in pixels if all(abs(p[i] - BAR_COLOUR[i]) <= 6 for i in range(3)))
    assert painted > 5000, painted
