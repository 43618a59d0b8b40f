"""A small inline SVG sparkline with its numbers as text: no script, no inline style, no layout shift.

Contract:
- :func:`sparkline` takes the points oldest first (the order a reader scans a chart, left to
  right) and returns one ``<figure class="spark">`` holding
  - an ``<svg role="img" aria-labelledby=…>`` whose ``<title>`` summarises the series (first and
    last point, lowest and highest value); a fixed ``viewBox`` and ``width``/``height`` attributes,
    so the browser reserves its box before CSS arrives and nothing moves;
  - a ``<table>`` in a ``<div class="vh">`` (visually hidden, read by screen readers, copied with the page text)
    with every point's label and exact value, and the note of each point (e.g. "provisional"), or
    the same numbers as one visually hidden sentence (``table=False``);
- Colours and strokes come from classes in site.css (CSP ``style-src 'self'``: a ``style``
  attribute would be blocked), so dark mode and forced colours need no second SVG.
- Everything textual is escaped here (labels are ours, but the ``id_prefix`` and caption carry the
  tag's display name into the page, so they go through markupsafe like any user-supplied text).
Pure: no Flask, no I/O.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

from markupsafe import Markup, escape

WIDTH = 120
HEIGHT = 32
PAD = 3  # room for the end dot's radius and the stroke, so neither is clipped by the viewBox


class SparkPoint(NamedTuple):
    label: str  # what the table's row header says ("Mon 30 Nov", "14:00")
    datetime: str  # the machine-readable ``<time datetime>`` ("2026-11-30", "2026-11-30T14:00Z")
    value: int
    note: str = ""  # e.g. "provisional" for a day the nightly reconciliation has not covered yet


def _coords(values: Sequence[int]) -> list[tuple[float, float]]:
    """x spread evenly over the width, y scaled to the highest value (0 at the bottom). A single
    point sits in the middle; an all-zero series is a flat line on the baseline."""
    top = max(values) or 1
    n = len(values)
    span_x, span_y = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    xs = [PAD + span_x * i / (n - 1) for i in range(n)] if n > 1 else [WIDTH / 2]
    return [(x, HEIGHT - PAD - span_y * v / top) for x, v in zip(xs, values)]


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def summary(points: Sequence[SparkPoint], what: str) -> str:
    """One sentence for the SVG's ``<title>``: the series, its range and where it ended."""
    if not points:
        return f"{what}: no data"
    values = [p.value for p in points]
    return (f"{what}, {points[0].label} to {points[-1].label}: lowest {min(values):,}, "
            f"highest {max(values):,}, latest {values[-1]:,}")


def sparkline(points: Sequence[SparkPoint], *, id_prefix: str, what: str, value_header: str = "Posts",
              table: bool = True) -> Markup:
    """The figure for ``points`` (oldest first). ``id_prefix`` makes the title's id unique on the
    page (two sparklines, one page); ``what`` names the series ("Posts per day, last 7 days").
    ``table=False``: the numbers as one sentence ("11:00 5, 12:00 3, …") instead of a table, for
    long series of plain points (24 hours: a 24-row table would be 2 KB of the page)."""
    title_id = f"{id_prefix}-title"
    parts = [f'<figure class="spark"><svg class="spark-svg" role="img" aria-labelledby="{escape(title_id)}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">'
             f'<title id="{escape(title_id)}">{escape(summary(points, what))}</title>']
    if points:
        xy = _coords([p.value for p in points])
        line = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in xy)
        parts.append(f'<polyline class="spark-line" points="{line}"/>')
        last_x, last_y = xy[-1]
        parts.append(f'<circle class="spark-end" cx="{_fmt(last_x)}" cy="{_fmt(last_y)}" r="2"/>')
    parts.append("</svg>")
    parts.append(_table(points, what, value_header) if table else _sentence(points, what))
    parts.append("</figure>")
    return Markup("".join(parts))


def _sentence(points: Sequence[SparkPoint], what: str) -> str:
    return (f'<p class="vh">{escape(what)}: '
            + ", ".join(f"{escape(p.label)} {p.value:,}" for p in points) + ".</p>")


def _table(points: Sequence[SparkPoint], what: str, value_header: str) -> str:
    # a th first in each body row is its row header (HTML's "auto" scope): no scope attribute needed
    rows = "".join(
        f'<tr><th><time datetime="{escape(p.datetime)}">{escape(p.label)}</time></th>'
        f"<td>{p.value:,}</td><td>{escape(p.note)}</td></tr>"
        for p in points)
    # the wrapper is what is hidden: a table cannot be narrower than its content
    return (f'<div class="vh"><table><caption>{escape(what)}</caption>'
            f'<thead><tr><th scope="col">When</th><th scope="col">{escape(value_header)}</th>'
            f'<th scope="col">Note</th></tr></thead><tbody>{rows}</tbody></table></div>')
