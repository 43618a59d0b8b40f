"""A small inline SVG sparkline with its numbers as text: no script, no inline style, no layout shift.

:func:`sparkline` takes the points oldest first and returns one ``<figure class="spark">``: an
``<svg role="img">`` whose ``<title>`` summarises the series, with a fixed ``viewBox`` and
``width``/``height`` (its box is reserved before CSS arrives), and every point's label, exact value
and note as a visually hidden table (or one sentence, ``table=False``) for screen readers and copied
text. Colours come from site.css classes (the CSP forbids ``style`` attributes), so dark mode and
forced colours need no second SVG. All text is escaped here. Pure: no Flask, no I/O.
"""
from __future__ import annotations

import functools
import re
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


@functools.lru_cache(maxsize=16)
def _xs(n: int) -> tuple[str, ...]:
    """x of each of ``n`` points, spread evenly over the width (one point: in the middle), as text;
    the same few series lengths (7, 24) on every page, so computed once."""
    span_x = WIDTH - 2 * PAD
    return tuple(_fmt(PAD + span_x * i / (n - 1)) for i in range(n)) if n > 1 else (_fmt(WIDTH / 2),)


def _ys(values: Sequence[int]) -> list[str]:
    """y scaled to the highest value (0 at the bottom; an all-zero series is a flat baseline)."""
    top = max(values) or 1
    scale = (HEIGHT - 2 * PAD) / top
    return [_fmt(HEIGHT - PAD - v * scale) for v in values]


def _fmt(v: float) -> str:
    text = "%.1f" % v
    return text[:-2] if text.endswith(".0") else text


def summary(points: Sequence[SparkPoint], what: str) -> str:
    """One sentence for the SVG's ``<title>``: the series, its range and where it ended."""
    if not points:
        return f"{what}: no data"
    values = [p.value for p in points]
    return (f"{what}, {points[0].label} to {points[-1].label}: lowest {min(values):,}, "
            f"highest {max(values):,}, latest {values[-1]:,}")


def sparkline(points: Sequence[SparkPoint], *, id_prefix: str, what: str, table: bool = True) -> Markup:
    """The figure for ``points`` (oldest first). ``id_prefix`` makes the title's id unique on the
    page (two sparklines, one page); ``what`` names the series ("Posts per day, last 7 days").
    ``table=False``: the numbers as one sentence ("11:00 5, 12:00 3, …") instead of a table, for
    long series of plain points (24 hours: a 24-row table would be 2 KB of the page)."""
    title_id = f"{id_prefix}-title"
    parts = [f'<figure class="spark"><svg class="spark-svg" role="img" aria-labelledby="{escape(title_id)}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">'
             f'<title id="{escape(title_id)}">{escape(summary(points, what))}</title>']
    if points:
        xs, ys = _xs(len(points)), _ys([p.value for p in points])
        line = " ".join([f"{x},{y}" for x, y in zip(xs, ys)])
        parts.append(f'<polyline class="spark-line" points="{line}"/>')
        parts.append(f'<circle class="spark-end" cx="{xs[-1]}" cy="{ys[-1]}" r="2"/>')
    parts.append("</svg>")
    parts.append(_table(points, what) if table else _sentence(points, what))
    parts.append("</figure>")
    return Markup("".join(parts))


_SPECIAL = re.compile(r"[&<>\"']")  # the characters markupsafe.escape replaces


def _text(s: str) -> str:
    """``escape(s)`` as text, skipping the call when there is nothing to escape (dates and labels:
    21 calls a page, a tenth of a sparkline's cost); same bytes either way (a property test)."""
    return str(escape(s)) if _SPECIAL.search(s) else s


def _sentence(points: Sequence[SparkPoint], what: str) -> str:
    return f'<p class="vh">{escape(what + ": " + ", ".join([f"{p.label} {p.value:,}" for p in points]))}.</p>'


def _table(points: Sequence[SparkPoint], what: str) -> str:
    # a th first in each body row is its row header (HTML's "auto" scope): no scope attribute needed
    rows = "".join(
        f'<tr><th><time datetime="{_text(p.datetime)}">{_text(p.label)}</time></th>'
        f"<td>{p.value:,}</td><td>{_text(p.note)}</td></tr>"
        for p in points)
    # the wrapper is what is hidden: a table cannot be narrower than its content
    return (f'<div class="vh"><table><caption>{escape(what)}</caption>'
            f'<thead><tr><th scope="col">When</th><th scope="col">Posts</th>'
            f'<th scope="col">Note</th></tr></thead><tbody>{rows}</tbody></table></div>')
