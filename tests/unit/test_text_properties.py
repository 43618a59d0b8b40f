"""Hypothesis properties of hashtag extraction and normalisation."""
from __future__ import annotations

import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hashtags import distinct_tags, extract_hashtags, is_valid_key, normalize_tag
from hashtags.settings import MAX_TAG_LENGTH
from hashtags.text import HASHTAG_SPECIAL_CHARS

LETTER = regex.compile(r"\p{L}")

# Any code point, lone surrogates included.
any_text = st.text(st.characters(exclude_categories=()), max_size=200)

# Text biased towards what matters to hashtags: signs, boundaries, URL pieces, joiners, marks,
# letters of several scripts, digits, emoji, keycaps.
PIECES = [
    "#", "#", "#", "＃", " ", " ", "\n", "\u3000", "&", "_", "-", ".", ",", "!", "/", "://", "@",
    "http", "https://", "x.com/", ".com/", "www.", "a", "Z", "ß", "İ", "ı", "é", "e\u0301", "\u0301",
    "ｌｏｖｅ", "ﬁ", "ǰ", "Σ", "ς", "日本", "カタカナ", "ｶﾀｶﾅ", "트위터", "שלום", "مرحبا", "ً", "ﷺ", "ﹰ",
    "१२", "1", "2", "٣", "\u200b", "\u200c", "\u200d", "\ufe0e", "\ufe0f", "\u20e3", "😍", "❤",
    "👨\u200d👩", "\ud800", "\x00", "love", "LOVE", "tag", *HASHTAG_SPECIAL_CHARS, "~",
]
hashtaggy_text = st.lists(st.sampled_from(PIECES) | any_text.map(lambda s: s[:3]), max_size=40).map("".join)
texts = any_text | hashtaggy_text

_SPECIALS = "".join(f"\\u{ord(c):04x}" for c in HASHTAG_SPECIAL_CHARS)
_ALNUM = rf"[\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}]"
# A deliberately naive port of twitter-text's algorithm (JS extractHashtagsWithIndices without the
# URL pass): the boundary character is consumed, the tag is a greedy run holding a letter, and the
# "followed by # or ://" check is done in Python after the match.
_REFERENCE = regex.compile(
    rf"(^|\ufe0e|\ufe0f|[^&\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}])([#＃])(?![\ufe0f\u20e3])"
    rf"({_ALNUM}*\p{{L}}{_ALNUM}*)",
    regex.DOTALL,
)
_END = regex.compile(r"[#＃]|://")


def reference_extract(text: str) -> list[str]:
    tags = []
    for m in _REFERENCE.finditer(text):
        if _END.match(text, m.end()):
            continue
        tags.append(m.group(3).rstrip("\u200c\u200d"))
    return tags


@settings(max_examples=600, deadline=None)
@given(texts)
@example("#a\ud800")
@example("#\u200d\u200c")
@example("✌️#tag")
def test_extract_never_raises_and_tags_have_letters(text):
    tags = extract_hashtags(text)
    assert isinstance(tags, list)
    for tag in tags:
        assert isinstance(tag, str) and tag
        assert LETTER.search(tag), tag


@settings(max_examples=600, deadline=None)
@given(texts)
def test_tags_appear_in_the_text_in_order(text):
    pos = 0
    for tag in extract_hashtags(text):
        hits = [i for i in (text.find("#" + tag, pos), text.find("＃" + tag, pos)) if i >= 0]
        assert hits, (tag, text)
        pos = min(hits) + 1 + len(tag)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_every_tag_reextracts_to_itself(text):
    for tag in extract_hashtags(text):
        assert extract_hashtags("#" + tag) == [tag]
        assert extract_hashtags(f"x #{tag} y") == [tag]


@settings(max_examples=600, deadline=None)
@given(texts.filter(lambda t: "/" not in t))
def test_matches_naive_twitter_text_port_without_urls(text):
    # Without '/' there is no URL, so the fast single-regex path must equal the naive algorithm.
    assert extract_hashtags(text) == reference_extract(text)


@settings(max_examples=600, deadline=None)
@given(texts)
def test_urls_only_remove_tags(text):
    # The URL pass only ever drops tags: the result is a subsequence of the naive port.
    ref = iter(reference_extract(text))
    for tag in extract_hashtags(text):
        assert any(tag == r for r in ref), (tag, text)


@settings(max_examples=800, deadline=None)
@given(texts)
@example("ǰ")
@example("か゛")
@example("ﷺ")
@example("ΣΊΣΥΦΟΣ")
def test_normalize_is_idempotent(text):
    key = normalize_tag(text)
    assert normalize_tag(key) == key


@settings(max_examples=600, deadline=None)
@given(texts)
def test_normalize_is_idempotent_on_tags(text):
    for tag in extract_hashtags(text):
        key = normalize_tag(tag)
        assert normalize_tag(key) == key


@settings(max_examples=600, deadline=None)
@given(texts)
def test_distinct_tags_keys_unique_valid_and_from_extract(text):
    pairs = distinct_tags(text)
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys))
    extracted = extract_hashtags(text)
    for key, spelling in pairs:
        assert is_valid_key(key), (key, spelling)
        assert key == normalize_tag(spelling)
        assert len(spelling) <= MAX_TAG_LENGTH
        assert spelling in extracted
        # the first spelling of that key in the text
        assert spelling == next(t for t in extracted if normalize_tag(t) == key)
    # every countable tag is represented
    for tag in extracted:
        if len(tag) <= MAX_TAG_LENGTH and is_valid_key(normalize_tag(tag)):
            assert normalize_tag(tag) in keys
    # order of first appearance
    firsts = [next(i for i, t in enumerate(extracted) if normalize_tag(t) == k) for k in keys]
    assert firsts == sorted(firsts)


@settings(max_examples=600, deadline=None)
@given(texts)
def test_is_valid_key_never_raises_and_implies_normalised(text):
    if is_valid_key(text):
        assert normalize_tag(text) == text
        assert 0 < len(text) <= MAX_TAG_LENGTH
        assert LETTER.search(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["Love", "LOVE", "ｌｏｖｅ", "love", "Straße", "STRASSE", "日本"]), min_size=1))
def test_case_and_width_variants_are_one_key(tags):
    pairs = distinct_tags(" ".join("#" + t for t in tags))
    assert len(pairs) == len({normalize_tag(t) for t in tags})
    assert pairs[0][1] == tags[0]
