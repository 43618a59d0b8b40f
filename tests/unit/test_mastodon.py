"""/api/v1/tags/<name>'s body against Mastodon's documented Tag entity (tests/fixtures/mastodon_tag.json
is the example of docs.joinmastodon.org/entities/Tag, mastodon/documentation content/en/entities/Tag.md)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from hypothesis import given, settings, strategies as st

from hashtags.history import DayPoint
from serving.mastodon import day_timestamp, entity_for, known_accounts, tag_entity

FIXTURE = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "mastodon_tag.json").read_text())


def fixture_days() -> list[DayPoint]:
    """The fixture's history as our DayPoints (newest first, as hashtags.history returns them)."""
    return [DayPoint(dt.datetime.fromtimestamp(int(h["day"]), dt.timezone.utc).date(), int(h["uses"]),
                     int(h["accounts"]), True) for h in FIXTURE["history"]]


def test_entity_equals_the_documented_example():
    got = tag_entity("nowplaying", "https://mastodon.social/tags/nowplaying", fixture_days())
    assert got == FIXTURE
    # field by field: the same names in the same order, the same JSON types
    assert list(got) == list(FIXTURE) == ["name", "url", "history", "following"]
    for ours, theirs in zip(got["history"], FIXTURE["history"], strict=True):
        assert list(ours) == list(theirs) == ["day", "uses", "accounts"]
        assert all(type(v) is str for v in ours.values())
    assert got["following"] is False
    assert json.loads(json.dumps(got)) == FIXTURE


def test_history_is_newest_first_one_day_apart_at_midnight_utc():
    got = tag_entity("nowplaying", "u", fixture_days())["history"]
    days = [int(h["day"]) for h in got]
    assert days == [1574553600 - 86400 * i for i in range(7)]
    assert all(d % 86400 == 0 for d in days)
    assert dt.datetime.fromtimestamp(days[0], dt.timezone.utc) == dt.datetime(2019, 11, 24, tzinfo=dt.timezone.utc)


def test_day_timestamp_is_midnight_utc_as_a_string():
    assert day_timestamp(dt.date(2019, 11, 24)) == "1574553600"
    assert day_timestamp(dt.date(1970, 1, 1)) == "0"
    assert day_timestamp(dt.date(2026, 12, 1)) == "1796083200"


def test_unknown_accounts_are_the_certain_lower_bound():
    days = [DayPoint(dt.date(2026, 12, 1), 12, None, False), DayPoint(dt.date(2026, 11, 30), 0, None, False),
            DayPoint(dt.date(2026, 11, 29), 5, 3, True)]
    got = tag_entity("Love", "https://h.example/tags/love", days)["history"]
    assert got == [{"day": "1796083200", "uses": "12", "accounts": "1"},
                   {"day": "1795996800", "uses": "0", "accounts": "0"},
                   {"day": "1795910400", "uses": "5", "accounts": "3"}]


def test_name_is_the_display_name_and_url_is_given():
    got = tag_entity("ÉtéIndien", "https://h.example/tags/%C3%A9t%C3%A9indien", [])
    assert got == {"name": "ÉtéIndien", "url": "https://h.example/tags/%C3%A9t%C3%A9indien", "history": [],
                   "following": False}


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 10**9), st.one_of(st.none(), st.integers(0, 10**9)))
def test_accounts_never_exceed_uses_when_unknown_and_are_exact_when_known(posts, accounts):
    got = known_accounts(posts, accounts)
    if accounts is None:
        assert got == min(posts, 1)
    else:
        assert got == accounts


def test_entity_for_a_page_document():
    from hashtags.layout import DayUse, HourUse, PageDocument

    utc = dt.timezone.utc
    doc = PageDocument("love", "Love", 99, base_as_of=dt.datetime(2026, 11, 30, tzinfo=utc),
                       hours=(HourUse(dt.datetime(2026, 12, 1, 9, tzinfo=utc), 4),),
                       days=(DayUse(dt.date(2026, 11, 29), 30, 11),))
    got = entity_for(doc, dt.datetime(2026, 12, 1, 9, 59, tzinfo=utc), "https://h.example/")
    assert got["name"] == "Love" and got["url"] == "https://h.example/tags/love" and got["following"] is False
    assert got["history"][:3] == [{"day": "1796083200", "uses": "4", "accounts": "1"},
                                  {"day": "1795996800", "uses": "0", "accounts": "0"},
                                  {"day": "1795910400", "uses": "30", "accounts": "11"}]
    assert len(got["history"]) == 7 and got["history"][-1]["day"] == str(1796083200 - 6 * 86400)
