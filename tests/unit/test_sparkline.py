"""serving.sparkline: geometry, accessible text, escaping, and no inline style/script."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from hypothesis import given, settings, strategies as st

from serving.sparkline import HEIGHT, PAD, WIDTH, SparkPoint, sparkline, summary

SVG = "{http://www.w3.org/2000/svg}"


def week(values):
    return [SparkPoint(f"Day {i}", f"2026-11-{24 + i:02d}", v, "provisional" if i == len(values) - 1 else "")
            for i, v in enumerate(values)]


def parse(markup) -> ET.Element:
    # the figure is well-formed XML (the SVG carries no namespace in HTML; add it for ElementTree)
    return ET.fromstring(str(markup).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def points_of(fig: ET.Element, tag: str) -> list[tuple[float, float]]:
    el = fig.find(f".//{SVG}{tag}")
    return [tuple(map(float, p.split(","))) for p in el.get("points").split()]


def test_geometry_scales_to_the_highest_value_left_to_right():
    fig = parse(sparkline(week([0, 10, 20, 5, 20, 0, 10]), id_prefix="d", what="Posts per day"))
    line = points_of(fig, "polyline")
    assert [x for x, _ in line] == [3, 22, 41, 60, 79, 98, 117]
    assert [y for _, y in line] == [29, 16, 3, 22.5, 3, 29, 16]
    svg = fig.find(f"{SVG}svg")
    assert (svg.get("viewBox"), svg.get("width"), svg.get("height")) == (f"0 0 {WIDTH} {HEIGHT}", "120", "32")
    end = svg.find(f"{SVG}circle")
    assert (float(end.get("cx")), float(end.get("cy"))) == (117, 16)


def test_all_zero_is_a_flat_line_on_the_baseline_and_one_point_is_centred():
    flat = points_of(parse(sparkline(week([0] * 7), id_prefix="d", what="w")), "polyline")
    assert {y for _, y in flat} == {HEIGHT - PAD}
    one = points_of(parse(sparkline(week([4]), id_prefix="d", what="w")), "polyline")
    assert one == [(WIDTH / 2, PAD)]


def test_accessible_text_has_every_exact_number():
    fig = parse(sparkline(week([1200, 3, 0, 7, 1_234_567, 2, 9]), id_prefix="days", what="Posts per day"))
    svg = fig.find(f"{SVG}svg")
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "days-title"
    title = svg.find(f"{SVG}title")
    assert title.get("id") == "days-title"
    assert title.text == "Posts per day, Day 0 to Day 6: lowest 0, highest 1,234,567, latest 9"
    assert fig.find("div").get("class") == "vh"
    table = fig.find("div/table")
    assert table.find("caption").text == "Posts per day"
    rows = [[c.text if c.tag == "td" else c.find("time").text for c in tr] for tr in table.find("tbody")]
    assert rows == [[f"Day {i}", v, n] for i, (v, n) in enumerate(
        [("1,200", None), ("3", None), ("0", None), ("7", None), ("1,234,567", None), ("2", None), ("9", "provisional")])]
    times = [t.get("datetime") for t in table.iter("time")]
    assert times == [f"2026-11-{d}" for d in range(24, 31)]


def test_empty_series_says_so_and_draws_nothing():
    fig = parse(sparkline([], id_prefix="h", what="Posts per hour"))
    assert fig.find(f".//{SVG}title").text == "Posts per hour: no data"
    assert fig.find(f".//{SVG}polyline") is None and list(fig.find("div/table/tbody")) == []


def test_text_is_escaped_and_there_is_no_style_or_script():
    evil = '"><script>alert(1)</script>'
    out = str(sparkline([SparkPoint(evil, evil, 1, evil)], id_prefix=evil, what=evil))
    assert "<script" not in out and "style" not in out.replace('class="', "")
    # aria-labelledby, id, title (label twice + what), datetime, label, note, caption
    assert out.count("&lt;script&gt;") == 9
    parse(out)  # still well-formed


@settings(deadline=None, max_examples=50)
@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=30))
def test_every_point_stays_inside_the_viewbox(values):
    fig = parse(sparkline([SparkPoint(str(i), str(i), v) for i, v in enumerate(values)], id_prefix="p", what="w"))
    line = points_of(fig, "polyline")
    assert len(line) == len(values)
    assert all(PAD <= x <= WIDTH - PAD and PAD <= y <= HEIGHT - PAD for x, y in line)
    assert summary([SparkPoint(str(i), str(i), v) for i, v in enumerate(values)], "w").endswith(f"latest {values[-1]:,}")
    top = max(values)
    for (x, y), v in zip(line, values):
        if v == top and top > 0:
            assert y == PAD


@settings(deadline=None, max_examples=200)
@given(st.text())
def test_text_is_markupsafe_escape(s):
    from markupsafe import escape

    from serving.sparkline import _text

    assert _text(s) == str(escape(s))
