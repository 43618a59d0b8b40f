"""No message can stop the job (issue 8): whatever arrives — any bytes, any JSON, the message shapes
with any field mutated, any attribute map, any string content (lone surrogates, NUL, controls), any
timestamp — the real parse steps (ParsePostEventsFn / ParseTopPostsFn ``process``, the parse_*
functions) turn it into exactly ONE output: a valid item that every real sink encoder accepts (the
archive line, the Bigtable hour-count and top-posts rows serialised as MutateRows entries), or ONE
dead letter that Pub/Sub accepts (``pubsub_problems`` and Beam's own ``_to_proto_str`` check).
Then, one explicit test per poison message of issue 8 section 6."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import TimestampedValue
from google.cloud.bigtable.data.mutations import RowMutationEntry
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from hashtag_store import mutations
from hashtags import layout, settings
from hashtags.messages import (PostEvent, PostEventFields, Rejected, TopPostsUpdate, parse_post_event,
                               parse_post_event_fields, parse_top_posts)
from pipelines.transforms import (DROPPED_ATTRIBUTES, MAX_ATTRIBUTES, MAX_DEAD_LETTER_DATA_BYTES, ORIGINAL_BYTES,
                                  ParsePostEventsFn, ParseTopPostsFn, dead_letter, event_json_line,
                                  pubsub_problems, tag_deltas)

UTC = dt.timezone.utc
PROPERTY = hsettings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- the real sinks' encoders ------------------------------------------------------------------
def mutate_rows_entry(row) -> bytes:
    """A DirectRow as the MutateRows entry the Bigtable client sends (what WriteToBigTable builds)."""
    pb = RowMutationEntry(row.row_key, row._get_mutations())._to_pb()
    return type(pb).serialize(pb)


def encode_post_event(e: PostEvent) -> None:
    line = event_json_line(e).encode("utf-8")  # the archive line
    assert parse_post_event(line) == e  # ... which the recount re-reads (now=None) as the same event
    tags = e.tags()
    assert len(tags) <= settings.MAX_TAGS_PER_POST
    assert len(list(tag_deltas(e))) == len(tags)
    start = layout.hour_start(e.event_time)
    for key, spelling in tags:
        row = mutations.hour_count_row(key, start, e.delta, spelling if e.delta > 0 else None, generation=0)
        assert len(row.row_key) <= 4096 and mutate_rows_entry(row)


def encode_top_posts(u: TopPostsUpdate) -> None:
    row = mutations.top_posts_row(u)
    assert len(row.row_key) <= 4096 and mutate_rows_entry(row)


def assert_publishable(m: PubsubMessage, original_data=None) -> None:
    assert pubsub_problems(m) == []
    m._to_proto_str(for_publish=True)  # Beam's check before WriteToPubSub publishes (raised 'more than 100 attributes')
    assert m.attributes["dlq_reason"] and "dlq_source" in m.attributes
    if isinstance(original_data, bytes):
        if len(original_data) <= MAX_DEAD_LETTER_DATA_BYTES:
            assert m.data == original_data  # the original payload, untouched
        else:
            assert m.attributes[ORIGINAL_BYTES] == str(len(original_data))


def one_output(fn, element):
    outs = list(fn.process(element))
    assert len(outs) == 1, outs
    out = outs[0]
    if isinstance(out, TaggedOutput):
        assert out.tag == "dead"
        data = element.data if isinstance(element, PubsubMessage) else element
        assert_publishable(out.value, data if isinstance(data, bytes) else None)
        return None, out.value
    return (out.value if isinstance(out, TimestampedValue) else out), None


# ---- strategies --------------------------------------------------------------------------------
def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` six times in seven, so that whole messages are often valid and reach the encoders."""
    return st.sampled_from([True] * 6 + [False]).flatmap(lambda ok: valid if ok else invalid)


def sometimes(strategy: st.SearchStrategy, default) -> st.SearchStrategy:
    """``strategy`` one time in four, else ``default``."""
    return st.sampled_from([False] * 3 + [True]).flatmap(lambda on: strategy if on else st.just(default))


chars = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.characters(categories=["Cc"]),
                  st.sampled_from(list("#＃ /:.-_")))
nasty_strings = st.sampled_from(["\ud800", "a\udfff", "é\ud83d", "\x00", "a\x00b", "\x1f", "\x7f", "\x85",
                                 "\n", "\u2028", "\ufeff", "\U0010ffff", "\ufffe", "#", " ", ""])
text = st.one_of(st.text(chars, max_size=30), nasty_strings, st.tuples(st.text(max_size=5), nasty_strings).map("".join))
good_words = st.sampled_from(["#a", "#Love", "#LOVE", "#ｌｏｖｅ", "#día", "#ß", "word", "#" + "y" * 101,
                              "https://x.com/#frag", "#１２", "#_", "\n", "#t\x00", "\x00"])
bad_words = st.sampled_from(["#x\ud800", "\udfff", "\ud83d"])
captions = mostly(st.one_of(st.lists(good_words, max_size=40).map(" ".join),
                            st.integers(0, 1300).map(lambda n: " ".join(f"#t{i}" for i in range(n)))),
                  st.one_of(st.lists(st.one_of(good_words, bad_words), max_size=10).map(" ".join), text))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(text, c, max_size=4),
                           max_leaves=10)


def rfc3339(t: dt.datetime, offset: str, frac: bool) -> str:
    return t.replace(tzinfo=None).isoformat(timespec="microseconds" if frac else "seconds") + offset


def ago(seconds: float, offset: str = "Z", frac: bool = False) -> str:
    return rfc3339(dt.datetime.now(UTC) - dt.timedelta(seconds=seconds), offset, frac)


# accepted: the last week up to the skew; rejected or not a time: any datetime (years 1-9999, any
# offset, pre-floor and far future included), around the floor, around now + skew, junk
valid_times = st.builds(ago, st.floats(-240, 7 * 86400), st.sampled_from(["Z", "+00:00"]), st.booleans())
invalid_times = st.one_of(
    st.builds(rfc3339, st.datetimes(), st.sampled_from(["Z", "z", "+01:00", "-01:00", "+14:00", "-23:59", ""]),
              st.booleans()),
    st.builds(lambda s: rfc3339(settings.EVENT_TIME_FLOOR + dt.timedelta(seconds=s), "Z", True), st.floats(-2, 2)),
    st.builds(ago, st.floats(-3600, -290)), text, st.integers())
times = mostly(valid_times, invalid_times)
ids = mostly(st.sampled_from(["p1", "u1", "e1", "ｐ１", "a b", "x" * 128]),
             st.one_of(st.sampled_from(["", " ", "x" * 129, "a\x00", "\ud800"]), text))
urls = mostly(st.just("https://img.example/1.jpg"), text.map("https://i.example/".__add__))


@st.composite
def mutated(draw, base: dict) -> dict:
    """``base``, sometimes with a field dropped or replaced by any JSON value, or extra fields."""
    out = dict(base)
    for name in draw(sometimes(st.lists(st.sampled_from(sorted(base)), min_size=1, max_size=3, unique=True), [])):
        if draw(st.booleans()):
            del out[name]
        else:
            out[name] = draw(json_values)
    out.update(draw(sometimes(st.dictionaries(text, json_values, max_size=2), {})))
    return out


@st.composite
def post_event_bodies(draw) -> dict:
    kind = draw(st.sampled_from(["published", "deleted"]))
    base = {"event": kind, "post_id": draw(ids), "user_id": draw(ids), "caption": draw(captions),
            "image_url": draw(urls), "event_time": draw(times), "event_id": draw(ids)}
    if kind == "deleted" and draw(st.booleans()):
        base["hashtags"] = draw(mostly(
            st.one_of(st.lists(good_words, max_size=40), st.integers(0, 1000).map(lambda n: [f"#t{i}" for i in range(n)])),
            st.one_of(st.lists(st.one_of(good_words, bad_words, text), max_size=10), st.just([f"#t{i}" for i in range(1001)]))))
    return draw(mutated(base))


@st.composite
def top_posts_bodies(draw) -> dict:
    posts = draw(st.lists(st.fixed_dictionaries({"post_id": ids, "image_url": urls}), max_size=5, unique_by=lambda p: p["post_id"]))
    base = {"hashtag": draw(mostly(st.sampled_from(["love", "#Love", "ｌｏｖｅ", "ß", "día"]), text)),
            "computed_at": draw(times), "posts": posts}
    return draw(mutated(base))


def encodings(body) -> st.SearchStrategy[bytes]:
    return st.sampled_from([json.dumps(body).encode(),  # ASCII JSON: surrogates as \ud800 escapes
                            json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")])


attribute_keys = st.one_of(st.sampled_from(["event_time", "event_id", "goog", "googclient_x", "topic", "data",
                                            "ordering_key", "retry", "timeout", "dlq_reason", "", "k" * 257,
                                            "ключ" * 40]), text)
attribute_values = st.one_of(text, times, st.text(max_size=1100), st.sampled_from(["v" * 1025, "é" * 600]),
                             st.integers(), st.none())


@st.composite
def attribute_maps(draw, body: dict | None = None):
    """Any map (keys and values of any kind and size, up to Pub/Sub's 100 attributes and a few beyond),
    mostly holding the publisher's own event_time/event_id copied from the body."""
    attrs = {}
    if body and draw(mostly(st.just(True), st.just(False))):
        for name in ("event_time", "event_id"):
            if isinstance(body.get(name), str):
                attrs[name] = body[name]
    attrs.update(draw(sometimes(st.dictionaries(attribute_keys, attribute_values, max_size=6), {})))
    attrs.update(draw(sometimes(st.integers(90, 103).map(lambda n: {f"a{i}": "v" for i in range(n)}), {})))
    return attrs


@st.composite
def post_event_elements(draw):
    """What a read may hand the parse step: mostly a PubsubMessage of a post-event shape; also any JSON,
    any bytes, a str, or an element of another type altogether."""
    kind = draw(mostly(st.just("shape"), st.sampled_from(["json", "bytes", "str", "odd"])))
    if kind == "odd":
        return draw(st.sampled_from([None, 5, 1.5, [], {}, ("a", "b"), bytearray(b"{}"), memoryview(b"[]")]))
    if kind == "bytes":
        data, body = draw(st.binary(max_size=200)), None
    else:
        body = draw(post_event_bodies() if kind == "shape" else json_values)
        data = draw(encodings(body))
    if kind == "str":
        return data.decode("utf-8", "surrogatepass")
    if not draw(mostly(st.just(True), st.just(False))):
        return data
    attrs = draw(mostly(attribute_maps(body if isinstance(body, dict) else None),
                        st.sampled_from([None, [("event_time", "x")], "attrs"])))
    return PubsubMessage(data, attrs)


@st.composite
def top_posts_elements(draw):
    kind = draw(mostly(st.just("shape"), st.sampled_from(["json", "bytes", "odd"])))
    if kind == "odd":
        return draw(st.sampled_from([None, 7, [], object.__new__(object)]))
    data = draw(st.binary(max_size=200)) if kind == "bytes" else draw(encodings(
        draw(top_posts_bodies() if kind == "shape" else json_values)))
    return PubsubMessage(data, draw(attribute_maps())) if draw(st.booleans()) else data


# ---- properties ----------------------------------------------------------------------------------
@PROPERTY
@given(post_event_elements(), st.booleans(), st.booleans())
def test_any_post_events_input_is_one_encodable_event_or_one_publishable_dead_letter(element, stamp, require):
    event, dead = one_output(ParsePostEventsFn(stamp=stamp, require_attributes=require), element)
    if dead is None:
        assert isinstance(event, PostEvent)
        encode_post_event(event)


@PROPERTY
@given(top_posts_elements())
def test_any_top_posts_input_is_one_encodable_update_or_one_publishable_dead_letter(element):
    update, dead = one_output(ParseTopPostsFn(), element)
    if dead is None:
        assert isinstance(update, TopPostsUpdate)
        encode_top_posts(update)


@PROPERTY
@given(st.one_of(post_event_bodies().flatmap(encodings), st.binary(max_size=100), text),
       st.one_of(st.none(), attribute_maps()), st.sampled_from([None, "now"]), st.booleans())
def test_parse_functions_never_raise_and_agree(data, attributes, now, require):
    now = dt.datetime.now(UTC) if now else None
    e = parse_post_event(data, attributes, now=now, require_attributes=require)
    f = parse_post_event_fields(data, attributes, now=now, require_attributes=require)
    if isinstance(e, PostEvent):
        assert isinstance(f, PostEventFields) and tuple(getattr(e, n) for n in f._fields) == f
        encode_post_event(e)
    else:
        assert isinstance(e, Rejected) and f == e
    u = parse_top_posts(data, now=now)
    assert isinstance(u, (TopPostsUpdate, Rejected))
    if isinstance(u, TopPostsUpdate):
        encode_top_posts(u)


@PROPERTY
@given(st.one_of(st.binary(max_size=100), text, st.none(), st.integers(), st.lists(st.integers(), max_size=3)),
       st.one_of(st.none(), attribute_maps(), st.dictionaries(st.integers(), st.integers(), max_size=3)),
       text, text)
def test_a_dead_letter_of_anything_is_publishable(data, attributes, reason, source):
    m = dead_letter(data, attributes, reason, source)
    assert_publishable(m, data if isinstance(data, bytes) else None)
    if isinstance(attributes, dict) and attributes:
        kept = [k for k in m.attributes if not k.startswith("dlq_")]
        assert all(m.attributes[k] == attributes[k] for k in kept)
        assert len(kept) + int(m.attributes.get(DROPPED_ATTRIBUTES, 0)) == len(attributes)


STRING_FIELDS = ["post_id", "user_id", "caption", "image_url", "event_id", "hashtags"]


@PROPERTY
@given(st.sampled_from(STRING_FIELDS), st.sampled_from(["published", "deleted"]), text, st.booleans())
def test_one_nasty_string_in_any_field_of_a_valid_post_event(field, kind, value, in_attribute):
    fields = body(event=kind, hashtags=["#ok"] if kind == "deleted" else None)
    if field == "image_url":
        value = "https://img.example/" + value
    fields[field] = [value, "#ok"] if field == "hashtags" else value
    attrs = {"event_id": value} if in_attribute and field == "event_id" else {}
    event, dead = one_output(ParsePostEventsFn(), PubsubMessage(json.dumps(fields).encode(), attrs))
    if dead is None:
        encode_post_event(event)


@PROPERTY
@given(st.sampled_from(["hashtag", "post_id", "image_url"]), text)
def test_one_nasty_string_in_any_field_of_a_valid_top_posts_list(field, value):
    fields = top_body()
    if field == "hashtag":
        fields["hashtag"] = value
    else:
        fields["posts"][0][field] = ("https://img.example/" + value) if field == "image_url" else value
    update, dead = one_output(ParseTopPostsFn(), json.dumps(fields).encode())
    if dead is None:
        encode_top_posts(update)


# ---- the poison messages of issue 8 section 6, one by one ----------------------------------------
def body(**over) -> dict:
    d = {"event": "published", "post_id": "p1", "user_id": "u1", "caption": "#ok",
         "image_url": "https://img.example/1.jpg",
         "event_time": (dt.datetime.now(UTC) - dt.timedelta(minutes=1)).isoformat(timespec="seconds"),
         "event_id": "e1"}
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


def top_body(**over) -> dict:
    d = {"hashtag": "love", "computed_at": dt.datetime.now(UTC).isoformat(timespec="seconds"),
         "posts": [{"post_id": "p1", "image_url": "https://img.example/1.jpg"}]}
    d.update(over)
    return d


def dead_reason(fn, element) -> str:
    _, dead = one_output(fn, element)
    assert dead is not None, "accepted"
    return dead.attributes["dlq_reason"]


def test_poison_caption_with_a_lone_surrogate_escape():
    data = json.dumps(body(caption="#a \ud800")).encode()
    assert b"\\ud800" in data
    with pytest.raises(UnicodeEncodeError):  # what the archive writer did with it before
        json.dumps({"caption": "\ud800"}, ensure_ascii=False).encode("utf-8")
    assert "surrogate" in dead_reason(ParsePostEventsFn(), PubsubMessage(data, {"event_id": "e1"}))


@pytest.mark.parametrize("n, kept", [(98, 98), (100, 97)])
def test_poison_malformed_post_event_with_98_or_more_attributes(n, kept):
    attrs = {f"attr{i:02d}": "x" * 1000 for i in range(n)}
    _, dead = one_output(ParsePostEventsFn(), PubsubMessage(b"not json", attrs))
    assert len(dead.attributes) == MAX_ATTRIBUTES
    assert dead.attributes["dlq_reason"].startswith("payload is not JSON") and dead.data == b"not json"
    originals = {k: v for k, v in dead.attributes.items() if not k.startswith("dlq_")}
    assert len(originals) == kept and all(attrs[k] == v for k, v in originals.items())
    assert dead.attributes.get(DROPPED_ATTRIBUTES) == (str(n - kept) if n > kept else None)


@pytest.mark.parametrize("computed_at", ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_poison_top_posts_computed_before_1970(computed_at):
    assert "before the floor" in dead_reason(ParseTopPostsFn(), json.dumps(top_body(computed_at=computed_at)).encode())


def test_poison_top_posts_post_id_with_a_lone_surrogate():
    data = json.dumps(top_body(posts=[{"post_id": "\ud800", "image_url": "https://img.example/1.jpg"}])).encode()
    assert "lone surrogate" in dead_reason(ParseTopPostsFn(), data)


@pytest.mark.parametrize("year", [2999, 9999])
def test_poison_event_time_and_computed_at_far_in_the_future(year):
    t = f"{year}-01-01T00:00:00Z"
    assert "in the future" in dead_reason(ParsePostEventsFn(), json.dumps(body(event_time=t)).encode())
    assert "in the future" in dead_reason(ParseTopPostsFn(), json.dumps(top_body(computed_at=t)).encode())


def test_poison_delete_with_a_1000_entry_hashtags_list_yields_at_most_n_rows():
    data = json.dumps(body(event="deleted", caption=None, hashtags=[f"#t{i}" for i in range(1000)])).encode()
    event, _ = one_output(ParsePostEventsFn(), data)
    assert len(list(tag_deltas(event))) == settings.MAX_TAGS_PER_POST
    encode_post_event(event)


def test_poison_caption_with_1200_tags_yields_at_most_n_rows():
    data = json.dumps(body(caption=" ".join(f"#t{i}" for i in range(1200)))).encode()
    event, _ = one_output(ParsePostEventsFn(), data)
    assert [k for k, _ in tag_deltas(event)] == [f"t{i}" for i in range(settings.MAX_TAGS_PER_POST)]


def test_a_payload_over_the_pubsub_size_limit_is_truncated_and_flagged():
    data = b"x" * (MAX_DEAD_LETTER_DATA_BYTES + 10)
    m = dead_letter(data, {f"k{i}": "v" * 1024 for i in range(100)}, "too big", "post-events")
    assert_publishable(m, data)
    assert len(m.data) == MAX_DEAD_LETTER_DATA_BYTES and m.data == data[:len(m.data)]


def test_the_local_publishers_own_parameters_never_become_attributes():
    attrs = {"topic": "t", "data": "d", "ordering_key": "k", "retry": "r", "timeout": "1", "googx": "g",
             "dlq_reason": "old", "ok": "kept", "event_time": "\ud800"}
    m = dead_letter(b"x", attrs, "r\ud800" * 400, "post-events")
    assert_publishable(m, b"x")
    assert {k for k in m.attributes if not k.startswith("dlq_")} == {"ok"}
    assert m.attributes[DROPPED_ATTRIBUTES] == "8"
    assert len(m.attributes["dlq_reason"].encode()) <= 1024 and "\\ud800" in m.attributes["dlq_reason"]
