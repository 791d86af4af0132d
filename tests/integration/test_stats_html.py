"""`zi-coder stats --html FILE`: one self-contained page, parsed, then drawn by Chromium.

The history is test_stats_cli.py's fixture (its figures are worked out there).
The page is read with `html.parser`: three SVG plots with their titles, text
descriptions and axis labels; the tables with their captions and rows; nothing
that could make a request. Then headless Chromium (Debian's `chromium`) takes a
screenshot, decoded here (zlib, no imaging library) to check that the plots'
colours are on it. The screenshot is kept as `tests/integration/artifacts/
stats-report.png`. Without Chromium the browser test is skipped, unless CI is set.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from server.cli import main
from server.history.report_svg import BAR, LINE
from tests.integration.test_stats_cli import clean_env, history, history_now  # noqa: F401

ARTIFACTS = Path(__file__).parent / "artifacts"
PLOTS = [
    "Acceptance rate per day",
    "Latency of model-served completions",
    "Acceptance rate by language",
]


@dataclass
class Svg:
    attrs: dict[str, str]
    title: str = ""
    desc: str = ""
    ids: dict[str, str] = field(default_factory=dict)  # element id: "title" or "desc"
    texts: list[str] = field(default_factory=list)  # <text> elements
    bars: list[str] = field(default_factory=list)  # the <title> of each <rect>


@dataclass
class Table:
    caption: str = ""
    rows: list[list[str]] = field(default_factory=list)


class Page(HTMLParser):
    """What the tests look at: the svgs, the tables, every attribute, the <meta>s."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.svgs: list[Svg] = []
        self.tables: list[Table] = []
        self.attributes: list[tuple[str, str]] = []
        self.meta: dict[str, str] = {}
        self.lang = ""
        self._open: list[tuple[str, dict[str, str]]] = []
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.attributes += list(attributes.items())
        if tag == "html":
            self.lang = attributes.get("lang", "")
        elif tag == "meta" and "http-equiv" in attributes:
            self.meta[attributes["http-equiv"]] = attributes.get("content", "")
        elif tag == "svg":
            self.svgs.append(Svg(attributes))
        elif tag == "table":
            self.tables.append(Table())
        elif tag == "tr" and self.tables:
            self.tables[-1].rows.append([])
        if tag not in ("meta", "br", "circle", "line", "polyline"):
            self._open.append((tag, attributes))
        self._text = ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            return
        _, attributes = self._open.pop()
        text, parent = self._text.strip(), self._open[-1][0] if self._open else ""
        self._text = ""
        if self.svgs and tag == "text":
            self.svgs[-1].texts.append(text)
        elif self.svgs and tag == "title" and parent == "rect":
            self.svgs[-1].bars.append(text)
        elif self.svgs and tag in ("title", "desc") and parent == "svg":
            setattr(self.svgs[-1], tag, text)
            self.svgs[-1].ids[attributes.get("id", "")] = tag
        elif self.tables and tag == "caption":
            self.tables[-1].caption = text
        elif self.tables and tag in ("th", "td"):
            self.tables[-1].rows[-1].append(text)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def write_report(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[str, str]:
    code = main(["stats", "--html", str(path), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def test_the_page_has_three_plots_and_the_tables(
    history: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "report.html"
    out, err = write_report(capsys, path)

    assert err == f"zi-coder: stats: wrote the HTML report to {path}\n"
    assert "Acceptance rate: 57.1 % (4 of 7 shown)" in out.splitlines()  # stdout as ever
    page = parse(path)
    assert page.lang == "en"
    assert [svg.title for svg in page.svgs] == PLOTS
    for svg in page.svgs:
        assert svg.attrs["role"] == "img"
        # Named by its <title>, described by its <desc>: both inside it.
        assert svg.attrs["aria-labelledby"].split() == list(svg.ids)
        assert list(svg.ids.values()) == ["title", "desc"]
    days, latency, languages = page.svgs
    assert {"Accepted / shown", "100 %", "0 %"} <= set(days.texts)
    assert any(t.startswith("Day (UTC, ") for t in days.texts)
    assert [b.split(": ")[1] for b in days.bars] == ["100.0 % of 1 shown", "50.0 % of 6 shown"]
    assert "57.1 % over the period" in days.desc
    assert "characters kept after 10 min, 53.8 % over the period" in days.desc
    assert {"Completions", "Total time, request to last token (ms)"} <= set(latency.texts)
    assert {"p50 50 ms", "p90 460 ms", "p99 946 ms"} <= set(latency.texts)
    assert "median 50 ms, p90 460 ms, p99 946 ms" in latency.desc
    assert sum(int(b.rsplit(": ", 1)[1]) for b in latency.bars) == 7
    assert languages.bars == ["python: 66.7 % (4 of 6)", "rust: 0.0 % (0 of 1)"]
    assert "python 66.7 % (4 of 6); rust 0.0 % (0 of 1)" in languages.desc

    tables = {t.caption: t.rows for t in page.tables}
    assert list(tables) == [
        "Latency of model-served completions",
        "Completions by language",
        "Completions by model",
        "Live model calls, by kind and model",
        "Replays (zi-coder replay), not counted above",
        "Where suggestions came from",
        "Jobs, by kind and status",
        "Completions by day",
    ]
    assert tables["Completions by language"] == [
        [
            *("Language", "Generated", "Shown", "Accepted", "Partly", "Rate", "Chars accepted"),
            "Kept after 10 min",
        ],
        ["python", "6", "6", "3", "1", "66.7 %", "41", "53.8 %"],
        ["rust", "2", "1", "0", "0", "0.0 %", "0", "-"],
    ]
    assert tables["Latency of model-served completions"][1:] == [
        ["Total", "7", "50 ms", "460 ms", "946 ms"],
        ["First token", "7", "12 ms", "110 ms", "191 ms"],
    ]
    live = tables["Live model calls, by kind and model"]
    assert live[0] == [
        *("Kind", "Model", "Calls", "Errors", "Cancelled", "Mean"),
        *("Prompt tokens", "Output tokens", "Tokens reported by"),
    ]
    assert live[1] == [
        *("completion", "scripted-coder", "10", "1", "2", "412 ms"),
        *("180", "30", "6 of 10 calls"),
    ]
    replays = tables["Replays (zi-coder replay), not counted above"]
    assert replays[1:] == [
        ["completion", "scripted-coder", "2", "0", "0", "35 ms", "60", "10", "2 of 2 calls"]
    ]
    assert tables["Where suggestions came from"][1:] == [
        ["model", "7", "87.5 %"],
        ["shared cache", "1", "12.5 %"],
    ]
    assert "Answered by type-ahead: 2 requests" in path.read_text(encoding="utf-8")


def test_the_page_makes_no_request(
    history: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "report.html"
    write_report(capsys, path, "--since", "7d")
    page = parse(path)
    text = path.read_text(encoding="utf-8")

    links = [(k, v) for k, v in page.attributes if k in ("src", "href", "xlink:href", "action")]
    assert links == []
    assert "http://" not in text and "https://" not in text
    assert "url(" not in text and "@import" not in text and "<script" not in text
    assert page.meta["Content-Security-Policy"].startswith("default-src 'none'")


def test_an_empty_history_is_a_page_without_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZI_DATABASE_URL", f"sqlite:///{tmp_path / 'absent.sqlite3'}")
    path = tmp_path / "report.html"
    write_report(capsys, path)

    page = parse(path)
    text = path.read_text(encoding="utf-8")
    assert page.svgs == []
    assert text.count("nothing to plot") == 3
    assert "Note: no history yet at sqlite:///" in text


def test_an_html_file_it_cannot_write_is_one_line_and_exit_1(
    history: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["stats", "--html", str(tmp_path / "no" / "such" / "dir" / "r.html")])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.startswith("zi-coder: stats: cannot write ") and len(err.splitlines()) == 1


# -- in a browser ------------------------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return found


@pytest.mark.timeout(180)
def test_chromium_draws_the_plots(
    history: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chromium = _chromium()
    path = tmp_path / "report.html"
    write_report(capsys, path)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "stats-report.png"
    shot.unlink(missing_ok=True)

    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )

    assert shot.is_file(), result.stderr[-2000:]
    assert shot.stat().st_size > 30_000
    width, height, pixels = decode_png(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    colours = Counter(pixels[i : i + 3] for i in range(0, len(pixels), 3 * 7))  # a sample
    white = colours[b"\xff\xff\xff"] / colours.total()
    assert white < 0.97, "the page is (almost) blank"
    assert len(colours) > 50
    # The plots were drawn: bars and the line in their own colours.
    assert _near(colours, BAR) > 1000
    assert _near(colours, LINE) > 5


def _near(colours: Counter[bytes], hex_colour: str, tolerance: int = 8) -> int:
    target = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(
        n
        for c, n in colours.items()
        if all(abs(a - b) <= tolerance for a, b in zip(c, target, strict=True))
    )


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGB bytes of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        position += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)
    step = 3 if colour_type == 2 else 4
    stride = width * step
    raw = zlib.decompress(compressed)
    previous, rows = bytes(stride), []
    for y in range(height):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        previous = _unfilter(kind, line, previous, step)
        rows.append(
            previous if step == 3 else bytes(b for i, b in enumerate(previous) if i % 4 < 3)
        )
    return width, height, b"".join(rows)


def _unfilter(kind: int, line: bytes, previous: bytes, step: int) -> bytes:
    if kind == 0:
        return line
    if kind == 2:  # up: bytewise sums without carries, on whole rows at once
        a, b = int.from_bytes(line, "big"), int.from_bytes(previous, "big")
        low = int.from_bytes(b"\x7f" * len(line), "big")
        total = ((a & low) + (b & low)) ^ ((a ^ b) & ~low)
        return total.to_bytes(len(line), "big")
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - step] if i >= step else 0
        up = previous[i]
        if kind == 1:
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + (left + up) // 2) & 0xFF
        else:
            corner = previous[i - step] if i >= step else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            out[i] = (out[i] + predictor) & 0xFF
    return bytes(out)
