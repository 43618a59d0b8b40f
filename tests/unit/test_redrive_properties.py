"""Dead-letter redrive over arbitrary dead letters (hypothesis): whatever bytes and attributes a DLQ
subscription holds, grouping, selection, planning and the printed report never raise; every letter
ends in exactly one of republish / skipped / left; what is republished goes to its source topic with
no ``dlq_*`` attribute; the report is one printable line per entry (examples escaped)."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, settings, strategies as st

from hashtag_ops import redrive as rd
from hashtags.settings import Settings

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
SETTINGS = Settings(project="p-redrive")

_text = st.text(max_size=60)
_known_keys = st.sampled_from([rd.REASON, rd.SOURCE, rd.DROPPED_ATTRIBUTES, rd.ORIGINAL_BYTES, rd.PAYLOAD_KIND,
                               "event_time", "event_id"])
_attributes = st.dictionaries(st.one_of(_known_keys, _text), st.one_of(
    st.sampled_from(["post-events", "top-posts", "archive: bad line", "repr", "payload is not JSON: x"]), _text),
    max_size=8)
_letters = st.lists(st.builds(
    rd.DeadLetter, ack_id=_text, message_id=_text, data=st.binary(max_size=300), attributes=_attributes,
    dead_lettered_at=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1),
                                  timezones=st.just(dt.timezone.utc))), max_size=12)
_selections = st.builds(rd.Selection, reasons=st.lists(_text, max_size=2).map(tuple),
                        older_than=st.none() | st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=400)),
                        everything=st.booleans())


@settings(max_examples=150, deadline=None)
@given(letters=_letters, selection=_selections, dry_run=st.booleans())
def test_any_dead_letters_plan_and_render(letters, selection, dry_run):
    p = rd.plan(letters, selection, NOW, lambda source: rd.subscription_path(source, SETTINGS))
    placed = [d.ack_id for d, _ in p.republish] + [d.ack_id for d, _ in p.skipped] + [d.ack_id for d in p.left]
    assert sorted(placed) == sorted(d.ack_id for d in letters)
    if selection.empty:
        assert not p.republish and not p.skipped
    for d, _topic in p.republish:
        assert d.source in rd.SOURCE_TOPICS and d.not_redrivable() is None
        assert not any(k.startswith(rd.DLQ_PREFIX) for k in d.original_attributes())
    for d, why in p.skipped:
        assert why == d.not_redrivable() and why
    report = rd.render("sub", letters, p, NOW, limit_reached=False, dry_run=dry_run, selection=selection)
    assert report.splitlines()[0] == f"{len(letters)} dead letter(s) read from sub"
    assert [line for line in report.splitlines() if not line.isprintable()] == []
    assert sum(g.count for g in rd.group(letters)) == len(letters)
