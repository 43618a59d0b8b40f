"""Hashtag extraction and normalisation: the shared twitter-text conformance cases, then our own
cases for what twitter-text leaves open (documented in hashtags/text.py)."""
from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
import yaml

from hashtags import distinct_tags, extract_hashtags, is_valid_key, normalize_tag
from hashtags.settings import MAX_TAG_LENGTH

REPO = Path(__file__).resolve().parents[2]
# A vendored copy of ../shared/conformance/twitter_text_hashtags.yml, so a clean clone runs it;
# test_vendored_conformance_matches_shared checks the copy against the shared file where it exists.
CONFORMANCE = REPO / "tests" / "data" / "twitter_text_hashtags.yml"
SHARED_CONFORMANCE = REPO.parent / "shared" / "conformance" / "twitter_text_hashtags.yml"


def _conformance_cases():
    if not CONFORMANCE.is_file():  # fail loudly: these cases are the acceptance criterion
        raise FileNotFoundError(f"twitter-text conformance file missing: {CONFORMANCE}")
    cases = yaml.safe_load(CONFORMANCE.read_text(encoding="utf-8"))["hashtags"]
    return [pytest.param(c["text"], c["expected"], id=c["description"]) for c in cases]


CONFORMANCE_CASES = _conformance_cases()


@pytest.mark.skipif(not SHARED_CONFORMANCE.is_file(), reason="no ../shared checkout beside this clone")
def test_vendored_conformance_matches_shared():
    assert CONFORMANCE.read_bytes() == SHARED_CONFORMANCE.read_bytes()


def test_conformance_file_has_all_cases():
    assert len(CONFORMANCE_CASES) == 40


@pytest.mark.parametrize("text, expected", CONFORMANCE_CASES)
def test_twitter_text_conformance(text, expected):
    assert extract_hashtags(text) == expected


# --- basics --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("no tags here", []),
        ("#", []),
        ("# tag", []),
        ("#a", ["a"]),
        ("#tag1 #tag2 #tag1", ["tag1", "tag2", "tag1"]),  # repeats kept, in order
        ("#Tag, #tag. #TAG!", ["Tag", "tag", "TAG"]),  # trailing punctuation dropped, case as written
        ("(#tag)", ["tag"]),
        ('"#tag"', ["tag"]),
        ("#snake_case_tag", ["snake_case_tag"]),
        ("#a-b", ["a"]),  # '-' ends a tag
        ("#a'b", ["a"]),
        ("#2024goals", ["2024goals"]),
        ("#goals2024", ["goals2024"]),
        ("#___", []),
        ("a#b", []),  # preceded by a letter
        ("1#b", []),  # preceded by a digit
        ("_#b", []),  # preceded by '_'
        ("&#b", []),  # preceded by '&' (HTML entities: &#39;)
        ("it&#39;s", []),
        ("##tag", ["tag"]),
        ("#tag#other", []),  # followed by '#': not a tag at all (twitter-text endHashtagMatch)
        ("#tag＃other", []),
        ("#tag ##other", ["tag", "other"]),
        ("＃ｆｕｌｌ", ["ｆｕｌｌ"]),
        ("#tag\n#next\t#third", ["tag", "next", "third"]),
        ("#tag\u3000#ideographic_space", ["tag", "ideographic_space"]),
        ("#️⃣ keycap", []),  # keycap number sign is not a tag
        ("#⃣ keycap", []),
        ("#️⃣tag", []),
        ("✌️#hashtag", ["hashtag"]),  # U+FE0F before '#' is a boundary
        ("✌︎#hashtag", ["hashtag"]),  # U+FE0E too
        ("\u0301#tag", []),  # any other mark before '#' is not
    ],
)
def test_basics(text, expected):
    assert extract_hashtags(text) == expected


# --- length limit ----------------------------------------------------------------------------------

def test_max_tag_length_is_100():
    assert MAX_TAG_LENGTH == 100


def test_tag_at_the_limit_is_extracted_and_counted():
    tag = "a" * MAX_TAG_LENGTH
    assert extract_hashtags(f"x #{tag} y") == [tag]
    assert distinct_tags(f"x #{tag} y") == [(tag, tag)]
    assert is_valid_key(tag)


def test_tag_over_the_limit_is_extracted_as_written_but_not_counted():
    tag = "a" * (MAX_TAG_LENGTH + 1)
    assert extract_hashtags(f"#{tag} #short") == [tag, "short"]
    assert distinct_tags(f"#{tag} #short") == [("short", "short")]
    assert not is_valid_key(tag)


def test_limit_counts_characters_not_bytes():
    tag = "日" * MAX_TAG_LENGTH  # 300 UTF-8 bytes
    assert distinct_tags("#" + tag) == [(tag, tag)]


def test_tag_whose_key_grows_past_the_limit_is_not_counted():
    tag = "ß" * 60  # 60 characters as written, key "ss" * 60 = 120 characters
    assert extract_hashtags("#" + tag) == [tag]
    assert normalize_tag(tag) == "ss" * 60
    assert distinct_tags("#" + tag) == []


# --- zero-width characters -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("#ab\u200bcd", ["ab"]),  # ZERO WIDTH SPACE ends a tag
        ("\u200b#tag", ["tag"]),  # and is a boundary before '#'
        ("#ab\u200ccd", ["ab\u200ccd"]),  # ZWNJ inside a tag
        ("#ab\u200dcd", ["ab\u200dcd"]),  # ZWJ inside a tag
        ("#love\u200d❤️", ["love"]),  # a trailing joiner (before an emoji) is dropped
        ("#love\u200c ", ["love"]),
        ("#\u200dlove", ["\u200dlove"]),  # a leading joiner is kept, as written (twitter-text)
        ("#\u200d\u200c", []),
        ("#ab\u2060cd", ["ab"]),  # WORD JOINER is not a tag character
        ("#ab\ufeffcd", ["ab"]),  # BOM / ZWNBSP neither
        ("#ab\u00adcd", ["ab"]),  # SOFT HYPHEN neither
    ],
)
def test_zero_width(text, expected):
    assert extract_hashtags(text) == expected


def test_joiners_are_part_of_the_key():
    assert normalize_tag("می\u200cخواهم") == "می\u200cخواهم"
    assert normalize_tag("می\u200cخواهم") != normalize_tag("میخواهم")


# --- right-to-left scripts -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("שלום #ישראל עולם", ["ישראל"]),
        ("#תל_אביב", ["תל_אביב"]),
        ("#צה״ל", ["צה״ל"]),  # GERSHAYIM inside a tag
        ("#ג׳ירפה", ["ג׳ירפה"]),  # GERESH
        ("#בית־ספר", ["בית־ספר"]),  # MAQAF
        ("#שָׁלוֹם", ["שָׁלוֹם"]),  # Hebrew with points (marks)
        ("#مَرْحَبًا بكم", ["مَرْحَبًا"]),  # Arabic with harakat (marks)
        ("#القدس، #مصر.", ["القدس", "مصر"]),  # Arabic comma / full stop end a tag
        ("#٢٠٢٤", []),  # Arabic-Indic digits only: no letter
        ("#عام_٢٠٢٤", ["عام_٢٠٢٤"]),
        ("\u200f#עברית\u200f", ["עברית"]),  # RIGHT-TO-LEFT MARK around a tag
        ("\u202b#עברית\u202c", ["עברית"]),  # embedding controls
        ("مرحبا#عالم", []),  # preceded by a letter
    ],
)
def test_rtl(text, expected):
    assert extract_hashtags(text) == expected


def test_rtl_key_keeps_marks_nfkc():
    # NFKC leaves Arabic harakat in place; keys with and without marks are different hashtags.
    assert normalize_tag("مَرْحَبًا") == unicodedata.normalize("NFKC", "مَرْحَبًا")
    assert normalize_tag("مَرْحَبًا") != normalize_tag("مرحبا")
    # Arabic presentation forms fold to the base letters.
    assert normalize_tag("ﻣﺮﺣﺒﺎ") == "مرحبا"


# --- emoji ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("#love😍", ["love"]),
        ("#love😍#more", ["love", "more"]),  # emoji is a boundary
        ("😍#love", ["love"]),
        ("#😍", []),
        ("#👍🏽good", []),
        ("#love❤️", ["love"]),
        ("#family👨‍👩‍👧", ["family"]),  # emoji ZWJ sequence is not part of the tag
        ("#1️⃣", []),  # keycap digit: digit + marks, no letter
        ("#1️⃣a", ["1️⃣a"]),  # marks inside a tag that has a letter stay (twitter-text)
        ("#🇫🇷france", []),
        ("#france🇫🇷", ["france"]),
    ],
)
def test_emoji(text, expected):
    assert extract_hashtags(text) == expected


# --- '#' inside URLs and e-mail addresses -----------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("https://x.com/#frag", []),
        ("see https://x.com/#frag now", []),
        ("x.com/page#anchor", []),
        ("x.com/#anchor", []),
        ("www.example.co.uk:8080/a/#b", []),
        ("http://example.com/a?b=1&c=#d", []),
        ("http://example.com/#a#b#c", []),
        ("https://x.com/p/#frag #real", ["real"]),
        ("#real https://x.com/#frag", ["real"]),
        ("https://x.com/p\n#real", ["real"]),
        ("https://x.com/p👉#real", ["real"]),  # emoji ends the URL
        ("https://x.com/ja/#日本", []),
        ("ftp://host/#x", []),
        ("#http://twitter.com", []),  # tag followed by '://'
        ("24/7 #open", ["open"]),  # a slash is not a URL
        ("and/or #tag", ["tag"]),
        ("#a/#b", ["a", "b"]),
        ("1/2 #half", ["half"]),
        ("x.com #tag", ["tag"]),
        ("john#doe@example.com", []),  # '#' after a letter
        ("mail: me@example.com #contact", ["contact"]),
        ("#team@example.com", ["team"]),  # a tag directly before '@' stays a tag (twitter-text)
        ("me@example.com/#x", []),
    ],
)
def test_urls_and_emails(text, expected):
    assert extract_hashtags(text) == expected


# --- very long captions ------------------------------------------------------------------------------

def test_100_kb_caption_with_many_tags():
    words = ["#tag%d" % i if i % 5 == 0 else "word%d" % i for i in range(14_000)]
    caption = " ".join(words)
    assert len(caption) > 100_000
    tags = extract_hashtags(caption)
    assert tags == ["tag%d" % i for i in range(0, 14_000, 5)]
    assert len(distinct_tags(caption)) == 2_800


@pytest.mark.parametrize(
    "caption, expected_count",
    [
        ("/#a" * 40_000, 40_000),  # many slashes, no URL
        ("http://#a " * 12_000, 0),  # many URLs
        ("#" + "a" * 100_000, 1),  # one huge tag
        ("#" + "1" * 100_000, 0),  # one huge run without a letter
        ((" #" + "1" * 10_000) * 10, 0),
        ("#" * 100_000, 0),
        ("a." * 50_000 + "/#x", 1),  # 1-letter last label: not a host
        ("a." * 50_000 + "com/#x", 0),
        (("#tag" + "\u200d" * 1000 + " ") * 100, 100),
    ],
)
def test_adversarial_long_captions_complete(caption, expected_count):
    assert len(extract_hashtags(caption)) == expected_count


# --- combining marks ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("#\u0301", []),  # a mark alone: no letter
        ("#\u0301\u0302", []),
        ("#1\u0301", []),
        ("#\u0301love", ["\u0301love"]),  # twitter-text: a mark may start a tag; kept as written
        ("#cafe\u0301", ["cafe\u0301"]),  # decomposed é stays whole
        ("#cafe\u0301 #café", ["cafe\u0301", "café"]),
    ],
)
def test_combining_marks(text, expected):
    assert extract_hashtags(text) == expected


def test_decomposed_and_precomposed_are_one_key():
    assert distinct_tags("#cafe\u0301 #café #CAFÉ") == [("café", "cafe\u0301")]


# --- surrogates, controls, invalid input -------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("#ab\ud800cd", ["ab"]),  # a lone surrogate ends a tag, never raises
        ("\udfff#tag", ["tag"]),
        ("#\ud83d", []),
        ("#tag\x00rest", ["tag"]),
        ("\x00#tag", ["tag"]),
        ("#a\ufffdb", ["a"]),
        ("#\U00010400\U00010428", ["\U00010400\U00010428"]),  # astral letters (Deseret)
        ("#\U0001d400bold", ["\U0001d400bold"]),  # MATHEMATICAL BOLD CAPITAL A
    ],
)
def test_surrogates_and_controls(text, expected):
    assert extract_hashtags(text) == expected


def test_surrogates_in_normalisation_never_raise():
    assert normalize_tag("ab\ud800") == "ab\ud800"
    assert not is_valid_key("ab\ud800")
    assert distinct_tags("#ab\ud800cd") == [("ab", "ab")]


def test_non_string_input_is_a_type_error():
    with pytest.raises(TypeError):
        extract_hashtags(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        extract_hashtags(b"#bytes")  # type: ignore[arg-type]


# --- normalisation ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "tag, key",
    [
        ("Love", "love"),
        ("LOVE", "love"),
        ("ｌｏｖｅ", "love"),  # fullwidth (NFKC)
        ("ＬＯＶＥ", "love"),
        ("Straße", "strasse"),  # full case folding
        ("STRASSE", "strasse"),
        ("ﬁsh", "fish"),  # ligature (NFKC)
        ("\U0001d40b\U0001d428\U0001d42f\U0001d41e", "love"),  # mathematical bold
        ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),  # final sigma folds to σ
        ("σίσυφος", "σίσυφοσ"),
        ("Ǆemal", "džemal"),
        ("ǰ", "ǰ"),  # case folding decomposes, the final NFKC recomposes
        ("メ～テレ", "メ~テレ"),  # fullwidth tilde becomes '~'
        ("ｶﾀｶﾅ", "カタカナ"),  # halfwidth katakana
        ("ﷺ", "صلىاللهعليهوسلم"),  # compatibility spaces are removed
        ("か゛", "が"),  # spacing voiced mark: space removed, recomposed
        ("①tag", "1tag"),
    ],
)
def test_normalize(tag, key):
    assert normalize_tag(tag) == key


def test_love_variants_are_one_key_first_spelling_kept():
    assert distinct_tags("#Love #LOVE #ｌｏｖｅ #love") == [("love", "Love")]


def test_distinct_tags_order_of_first_appearance():
    assert distinct_tags("#b #A #a #c #B") == [("b", "b"), ("a", "A"), ("c", "c")]


def test_sharp_s():
    assert distinct_tags("#Straße #STRASSE #strasse") == [("strasse", "Straße")]


def test_turkish_dotted_and_dotless_i_are_consistent():
    # Locale-independent full case folding: İ -> i + U+0307; ı stays; I -> i.
    assert normalize_tag("İn") == "i\u0307n"
    assert normalize_tag("İN") == normalize_tag("İn") == normalize_tag("i\u0307n")
    assert normalize_tag("ın") == "ın"
    assert normalize_tag("In") == normalize_tag("in") == "in"
    assert distinct_tags("#İstanbul #istanbul #ıstanbul #İSTANBUL #ISTANBUL") == [
        ("i\u0307stanbul", "İstanbul"),
        ("istanbul", "istanbul"),
        ("ıstanbul", "ıstanbul"),
    ]
    for key, _ in distinct_tags("#İstanbul #istanbul #ıstanbul"):
        assert is_valid_key(key)


@pytest.mark.parametrize(
    "tag",
    ["Love", "ｌｏｖｅ", "Straße", "İn", "ǰ", "ﷺ", "か゛", "メ～テレ", "ΣΊΣΥΦΟΣ", "ශ්‍රීලංකා", "ｶﾀｶﾅ", "ﹰ"],
)
def test_normalize_is_idempotent(tag):
    once = normalize_tag(tag)
    assert normalize_tag(once) == once


# --- is_valid_key ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "key, valid",
    [
        ("love", True),
        ("love2024", True),
        ("2024", False),
        ("", False),
        ("Love", False),  # not normalised
        ("ｌｏｖｅ", False),
        ("straße", False),
        ("strasse", True),
        ("i\u0307n", True),
        ("ın", True),
        ("love me", False),
        ("love#me", False),
        ("#love", False),
        ("love/me", False),
        ("love.", False),
        ("メ~テレ", True),  # the key of #メ～テレ
        ("~", False),
        ("love\u200d", False),  # trailing joiner
        ("\ufe0flove", False),
        ("a" * MAX_TAG_LENGTH, True),
        ("a" * (MAX_TAG_LENGTH + 1), False),
        ("café", True),
        ("cafe\u0301", False),  # not NFKC
        ("日本語", True),
        ("ab\ud800", False),
        (None, False),
        (123, False),
    ],
)
def test_is_valid_key(key, valid):
    assert is_valid_key(key) is valid


def test_every_conformance_key_is_valid():
    for param in CONFORMANCE_CASES:
        text = param.values[0]
        for key, spelling in distinct_tags(text):
            assert is_valid_key(key), (key, spelling)
            assert key == normalize_tag(spelling)


def test_key_whose_normal_form_has_no_letter_is_not_counted():
    # U+FE70 ARABIC FATHATAN ISOLATED FORM is a letter (Lo); its key is a lone mark.
    assert extract_hashtags("#\ufe70") == ["\ufe70"]
    assert distinct_tags("#\ufe70") == []
