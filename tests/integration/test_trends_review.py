"""Trends through the Bigtable emulator: the review step of the streaming job (ReviewTrends.process
over real rows) with decisions made by ``python -m hashtag_ops.moderate``, and the web tier's
``/api/v1/trends/tags`` and ``/trends`` reading the one trends row the step wrote."""
from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from hashtag_ops import moderate
from hashtags import trends
from hashtags.settings import Settings
from pipelines.trends import ReviewTrends
from serving import create_app
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator
UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(second=0, microsecond=0)


class Minute:
    start = NOW.timestamp()


def candidate(tag: str, score: float, accounts: int) -> trends.TrendEntry:
    return trends.TrendEntry(tag, tag, score, accounts, accounts * 2)


@pytest.fixture
def env(store, table_name, monkeypatch):
    for name, value in {"HASHTAGS_PROJECT": PROJECT, "HASHTAGS_BIGTABLE_INSTANCE": INSTANCE,
                        "HASHTAGS_TABLE": table_name, "HASHTAGS_LOG_FORMAT": "json"}.items():
        monkeypatch.setenv(name, value)
    hour = NOW.replace(minute=0)
    store.write_hour_counts([(t, hour, 40, t.title()) for t in ("alpha", "beta", "gamma", "hidden", "spam")])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield store
    root.handlers[:] = handlers
    root.setLevel(level)


def review_step(store, table_name, candidates):
    """The job's ReviewTrends DoFn on the emulator table; its row written as WriteToBigTable would."""
    fn = ReviewTrends({"project_id": PROJECT, "instance_id": INSTANCE, "table_id": table_name})
    fn.setup()
    try:
        (row,) = list(fn.process(candidates, win=Minute()))
    finally:
        fn.teardown()
    store.mutate([row])


def api(store, without_review: bool, query: str = ""):
    app = create_app(Settings(project=PROJECT, bigtable_instance=INSTANCE, table=store._table_id,
                              trends_without_review=without_review), store)
    return app.test_client().get("/api/v1/trends/tags" + query)


def test_review_flow_end_to_end(env, table_name, capsys):
    store = env
    assert moderate.main(["hide", "hidden", "--reason", "abuse"]) == 0
    assert moderate.main(["reject", "#Spam", "--reason", "bot wave"]) == 0
    assert moderate.main(["approve", "gamma", "--reason", "news", "--by", "carol"]) == 0
    err = capsys.readouterr().err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    decisions = [(e["action"], e["tag"], e["trend"], e["was_trend"], e["reason"]) for e in events
                 if e.get("event") == "moderation"]
    assert decisions == [("hide", "hidden", "pending", "pending", "abuse"),
                         ("reject", "spam", "rejected", "pending", "bot wave"),
                         ("approve", "gamma", "allowed", "pending", "news")]
    review_step(store, table_name, [candidate("spam", 900, 50), candidate("alpha", 400, 30),
                                    candidate("hidden", 300, 25), candidate("beta", 100, 12),
                                    candidate("gamma", 50, 8)])
    listed = store.read_trends()
    assert listed.computed_at == NOW
    # hidden and rejected never listed; the rest keep their rank and carry their review state
    assert [(e.tag, e.review, e.accounts, e.uses) for e in listed.entries] == [
        ("alpha", "pending", 30, 60), ("beta", "pending", 12, 24), ("gamma", "allowed", 8, 16)]
    assert listed.entries[0].name == "Alpha"  # the tag's display spelling, from its row
    assert listed.entries[0].history[0] == trends.TrendDay(NOW.date(), 40, 1)  # no accounts cell: lower bound

    assert moderate.main(["pending", "--rank", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in out] == [["1", "#alpha"], ["2", "#beta"]]

    # production (review first): only gamma trends; locally every listed tag does
    resp = api(store, without_review=False)
    assert resp.status_code == 200
    assert [t["name"] for t in resp.get_json()] == ["Gamma"]
    assert [t["name"] for t in api(store, without_review=True).get_json()] == ["Alpha", "Beta", "Gamma"]

    # approving alpha takes effect at the next minute's review step
    assert moderate.main(["approve", "alpha", "--reason", "ok"]) == 0
    assert moderate.main(["reject", "beta", "--reason", "no"]) == 0
    review_step(store, table_name, [candidate("alpha", 400, 30), candidate("beta", 100, 12)])
    assert [t["name"] for t in api(store, without_review=False).get_json()] == ["Alpha"]


def test_api_limit_offset_link_and_cache_headers(env, table_name):
    store = env
    review_step(store, table_name, [candidate(t, 100 - i, 10) for i, t in enumerate(("alpha", "beta", "gamma"))])
    resp = api(store, True, "?limit=2")
    assert resp.status_code == 200
    body = resp.get_json()
    assert [t["name"] for t in body] == ["Alpha", "Beta"]
    assert body[0]["url"].endswith("/tags/alpha") and body[0]["following"] is False
    assert body[0]["history"][0] == {"day": str(int(dt.datetime.combine(NOW.date(), dt.time(), UTC).timestamp())),
                                     "uses": "40", "accounts": "1"}
    assert len(body[0]["history"]) == 7
    assert resp.headers["Link"] == '<http://localhost/api/v1/trends/tags?limit=2&offset=2>; rel="next"'
    assert resp.headers["Cache-Control"] == "public, max-age=30, s-maxage=60, stale-while-revalidate=60"
    second = api(store, True, "?limit=2&offset=2")
    assert [t["name"] for t in second.get_json()] == ["Gamma"]
    assert second.headers["Link"] == '<http://localhost/api/v1/trends/tags?limit=2&offset=0>; rel="prev"'
    assert len(api(store, True, "?limit=500").get_json()) == 3  # clamped to 20, 3 listed
    assert api(store, True, "?limit=abc").status_code == 200


def test_trends_page_lists_the_trending_tags(env, table_name):
    store = env
    review_step(store, table_name, [candidate("alpha", 100, 10), candidate("beta", 50, 7)])
    app = create_app(Settings(project=PROJECT, bigtable_instance=INSTANCE, table=table_name), store)
    resp = app.test_client().get("/trends")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert html.index('href="/tags/alpha"') < html.index('href="/tags/beta"')
    assert "10 accounts · 20 posts in the last hour" in html
    assert "<script" not in html


def test_no_list_yet_is_an_empty_array(store):
    resp = api(store, True)
    assert (resp.status_code, json.loads(resp.data)) == (200, [])
