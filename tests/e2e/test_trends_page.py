"""/trends (issue 19) in a real headless Chromium at phone and desktop widths: no console error, no
layout shift, every trending tag a link in rank order. The app runs in a real HTTP server over an
in-memory store holding one trends list (the code above the store is under test here)."""
from __future__ import annotations

import datetime as dt

import pytest

from hashtags import trends
from hashtags.settings import Settings
from serving import create_app
from tests.e2e.browser import require_chromium, serving
from tests.e2e.test_page_v2 import CLS_JS
from tests.unit.serving_fakes import FakeStore

pytestmark = pytest.mark.browser
UTC = dt.timezone.utc
TODAY = dt.datetime.now(UTC).date()
NAMES = ["Eclipse", "شمس", "WorldCup2026", "東京マラソン", "a" * 100]


class TrendsStore(FakeStore):
    def read_trends(self) -> trends.TrendList:
        history = tuple(trends.TrendDay(TODAY - dt.timedelta(days=d), 400 // (d + 1), 200 // (d + 1)) for d in range(7))
        return trends.TrendList(dt.datetime.now(UTC), tuple(
            trends.TrendEntry(n.lower(), n, 500.0 - i, 200 - i, 400 - i, "pending", history)
            for i, n in enumerate(NAMES)))


@pytest.fixture(scope="module")
def server():
    require_chromium()
    with serving(create_app(Settings(), TrendsStore({}))) as url:
        yield url


@pytest.mark.parametrize("width,height", [(390, 844), (1366, 900)])
def test_trends_page_renders_without_errors_or_layout_shift(server, browser, artifacts_dir, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    resp = page.goto(server + "/trends", wait_until="load")
    assert resp.status == 200
    links = page.eval_on_selector_all("ol.trends li > a", "els => els.map(e => e.textContent)")
    assert links == [f"#{n}" for n in NAMES]
    assert page.locator("ol.trends svg").count() == len(NAMES)
    assert page.evaluate(CLS_JS) == {"value": 0, "entries": 0}
    # nothing wider than the viewport (the 100-character tag wraps instead of scrolling the page)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(artifacts_dir / f"trends-{width}.png"), full_page=True)
    assert errors == []
    page.close()
