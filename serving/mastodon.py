"""Mastodon's Tag entity for ``GET /api/v1/tags/<name>``, so existing fediverse clients can read a tag.

Shape (docs.joinmastodon.org/entities/Tag and /methods/tags, read from the mastodon/documentation
repository, content/en/entities/Tag.md and methods/tags.md; the field encoding checked against
mastodon/mastodon app/models/trends/history.rb ``Day#as_json``, which casts every number with
``to_s``; fixture: tests/fixtures/mastodon_tag.json):

    {"name": str, "url": str,
     "history": [{"day": "<UNIX seconds of 00:00 UTC, as a string>", "uses": "<int as string>",
                  "accounts": "<int as string>"}, ... 7 days, today first],
     "following": false}

- ``name`` is the tag as people write it (our ``display_name``; Mastodon's serializer sends
  ``object.display_name`` too), ``url`` the tag's page on this service (absolute: the public base URL).
- ``history`` is 7 days, newest first, today (partial) included, as Mastodon's
  ``Trends::History#each`` (``0...7`` days ago). Days with no posts are "0", never left out.
- ``following`` is always false: the service has no accounts (Mastodon sends it only to a logged-in
  user; the documented example for an anonymous read includes it as false, and the issue asks for it).
- No ``id``: it belongs to Admin::Tag in the documentation (the database id for the admin API).

Accounts not yet known. Distinct accounts per day come only from the nightly reconciliation (the
streaming job counts posts, not people); for today and any day the nightly has not covered, the
count is unknown. The field is a required integer-as-string, so something must be sent. Choices:
the day's uses would be an upper bound presented as a fact (it overstates, and clients show
"N people talking" from it); "0" contradicts the uses on the same day ("12 uses by 0 accounts").
We send the largest number that is certainly true: ``1`` when the day has uses (someone posted
them), ``0`` when it has none: a lower bound, so a client never overstates, and uses > 0 never
comes with 0 accounts. The project's own API (``/api/tags/<name>``) says ``"accounts": null``.
Pure: no Flask, no I/O.
"""
from __future__ import annotations

import calendar
import datetime as dt
from typing import Protocol, Sequence

from hashtags.history import usage_history
from hashtags.layout import PageDocument
from serving.documents import tag_url

HISTORY_DAYS = 7


class _Day(Protocol):  # hashtags.history.DayPoint
    day: dt.date
    posts: int
    accounts: int | None


def day_timestamp(day: dt.date) -> str:
    """UNIX seconds of the day's midnight UTC, as Mastodon sends it (a string)."""
    return str(calendar.timegm(day.timetuple()))


def known_accounts(posts: int, accounts: int | None) -> int:
    """The accounts figure Mastodon clients get: the count when known, else the certain lower
    bound (1 if anyone posted, else 0). See the module docstring."""
    if accounts is not None:
        return accounts
    return 1 if posts > 0 else 0


def history_entries(days: Sequence[_Day]) -> list[dict[str, str]]:
    """``days`` newest first (hashtags.history's order, which is Mastodon's)."""
    return [{"day": day_timestamp(d.day), "uses": str(d.posts), "accounts": str(known_accounts(d.posts, d.accounts))}
            for d in days[:HISTORY_DAYS]]


def tag_entity(display_name: str, url: str, days: Sequence[_Day]) -> dict:
    """The Tag entity, keys in the documented example's order."""
    return {"name": display_name, "url": url, "history": history_entries(days), "following": False}


def entity_for(doc: PageDocument, now: dt.datetime, public_url: str) -> dict:
    """The entity for a page document: its 7-day history at ``now``, its page on ``public_url``."""
    return tag_entity(doc.display_name, tag_url(public_url, doc.hashtag), usage_history(doc, now).days)
