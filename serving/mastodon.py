"""Mastodon's Tag entity for ``GET /api/v1/tags/<name>``, so existing fediverse clients can read a tag.

Shape, sources (Mastodon's documentation and serializer) and why unknown accounts are sent as the
lower bound ``1``/``0``: docs/SERVING.md "Mastodon's Tag entity"; fixture
tests/fixtures/mastodon_tag.json. Pure: no Flask, no I/O.
"""
from __future__ import annotations

import calendar
import datetime as dt
from typing import Sequence

from hashtags.history import DayPoint, usage_history
from hashtags.layout import PageDocument
from serving.documents import tag_url

HISTORY_DAYS = 7


def day_timestamp(day: dt.date) -> str:
    """UNIX seconds of the day's midnight UTC, as Mastodon sends it (a string)."""
    return str(calendar.timegm(day.timetuple()))


def known_accounts(posts: int, accounts: int | None) -> int:
    """The accounts figure Mastodon clients get: the count when known, else the certain lower
    bound (1 if anyone posted, else 0). See the module docstring."""
    if accounts is not None:
        return accounts
    return 1 if posts > 0 else 0


def history_entries(days: Sequence[DayPoint]) -> list[dict[str, str]]:
    """``days`` newest first (hashtags.history's order, which is Mastodon's)."""
    return [{"day": day_timestamp(d.day), "uses": str(d.posts), "accounts": str(known_accounts(d.posts, d.accounts))}
            for d in days[:HISTORY_DAYS]]


def tag_entity(display_name: str, url: str, days: Sequence[DayPoint]) -> dict:
    """The Tag entity, keys in the documented example's order."""
    return {"name": display_name, "url": url, "history": history_entries(days), "following": False}


def entity_for(doc: PageDocument, now: dt.datetime, public_url: str) -> dict:
    """The entity for a page document: its 7-day history at ``now``, its page on ``public_url``."""
    return tag_entity(doc.display_name, tag_url(public_url, doc.hashtag), usage_history(doc, now).days)
