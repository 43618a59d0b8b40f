"""Hashtag extraction and normalisation (pure: no I/O).

Extraction ports twitter-text's hashtag rule (``validHashtag`` in twitter-text's JS/Java/Ruby sources)::

    (hashtagBoundary)(#|＃)(?!\\uFE0F|\\u20E3)(hashtagAlphaNumeric* hashtagAlpha hashtagAlphaNumeric*)

    hashtagAlphaNumeric = \\p{L} \\p{M} \\p{Nd} and the special chars  _ ZWNJ ZWJ ꙾ ־ ׳ ״ ～ 〜 ゛ ゜ ゠ ・ 〃 ་ ༌ ·
    hashtagBoundary     = start of text | U+FE0E | U+FE0F | any char that is not alphanumeric and not '&'

and, after a match, twitter-text's ``endHashtagMatch``: a tag directly followed by ``#``/``＃`` or by
``://`` is not a tag at all (``#tag#x`` and ``#http://x`` give nothing). Like twitter-text's
``extractHashtags`` (``checkUrlOverlap``), a ``#`` inside a URL is not a tag.

Where this module decides what twitter-text leaves open (see tests/unit/test_text.py):

* A tag needs at least one *letter* (``\\p{L}``). twitter-text also accepts a combining mark as "the
  letter"; that would make emoji keycaps (``#1️⃣``) and lone marks tags, so marks only count beside a
  letter here. Every shared conformance case is unaffected.
* Trailing joiners (ZWNJ/ZWJ) are dropped from the end of a tag, like trailing punctuation: a joiner
  with nothing after it joins nothing (``#love<ZWJ>❤`` is ``love``). Joiners inside a tag are kept.
* URLs are recognised without twitter-text's TLD list: from a marker, ``://`` (any scheme) or a
  host's letters-only last label followed by ``/`` (``x.com/``), over URL characters (twitter-text's
  path set plus any letter/digit/mark, ``#`` and ``?``); a ``#`` in there is not a tag
  (``https://x.com/#frag``). Whitespace or an emoji ends a URL. ``#`` after a letter/digit
  (``x.com/page#anchor``, ``john#doe@mail.com``) is never a tag by the boundary rule; a tag written
  directly before ``@`` (``#team@example.com``) is a tag, as in twitter-text.
* :func:`extract_hashtags` has no length limit (it reports what was written);
  :func:`distinct_tags` skips tags longer than ``MAX_TAG_LENGTH`` characters and tags whose key is
  not a valid key (see :func:`is_valid_key`): those are never counted.

The key of a tag (:func:`normalize_tag`) is NFKC, then Unicode full case folding, then NFKC again
(case folding can undo NFC composition, e.g. ``ǰ``), with U+0020 removed (only compatibility
decompositions such as ``ﷺ``, ``゛``, Arabic presentation forms put a space into a tag), repeated
until stable, so the function is idempotent. Case folding is locale-independent: ``İ`` becomes
``i̇`` (i + U+0307), ``ı`` stays ``ı``, ``ß`` becomes ``ss``. The ASCII fast path is ``str.lower``.
Results depend on the Unicode tables of the Python version (3.11: Unicode 14.0) and of ``regex``.
"""
from __future__ import annotations

import functools
import unicodedata

import regex

from hashtags.settings import MAX_TAG_LENGTH

__all__ = ["extract_hashtags", "normalize_tag", "distinct_tags", "is_valid_key"]

# twitter-text's hashtagSpecialChars, verbatim.
HASHTAG_SPECIAL_CHARS = (
    "_"
    "\u200c"  # ZERO WIDTH NON-JOINER
    "\u200d"  # ZERO WIDTH JOINER
    "\ua67e"  # CYRILLIC KAVYKA
    "\u05be"  # HEBREW PUNCTUATION MAQAF
    "\u05f3"  # HEBREW PUNCTUATION GERESH
    "\u05f4"  # HEBREW PUNCTUATION GERSHAYIM
    "\uff5e"  # FULLWIDTH TILDE
    "\u301c"  # WAVE DASH
    "\u309b"  # KATAKANA-HIRAGANA VOICED SOUND MARK
    "\u309c"  # KATAKANA-HIRAGANA SEMI-VOICED SOUND MARK
    "\u30a0"  # KATAKANA-HIRAGANA DOUBLE HYPHEN
    "\u30fb"  # KATAKANA MIDDLE DOT
    "\u3003"  # DITTO MARK
    "\u0f0b"  # TIBETAN MARK INTERSYLLABIC TSHEG
    "\u0f0c"  # TIBETAN MARK DELIMITER TSHEG BSTAR
    "\u00b7"  # MIDDLE DOT
)
_JOINERS = "\u200c\u200d"

_SPECIALS = "".join(f"\\u{ord(c):04x}" for c in HASHTAG_SPECIAL_CHARS)
# hashtagAlphaNumeric
_ALNUM = rf"[\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}]"
# Characters that may not precede the '#': alphanumerics and '&', except the variation selectors
# U+FE0E/U+FE0F (marks, but twitter-text's boundary explicitly allows them: `✌️#tag`).
_NOT_BEFORE = rf"[[\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}&]--[\ufe0e\ufe0f]]"

# One hashtag. The tag body is possessive (atomic), so "followed by # or ://" rejects the whole
# tag instead of backtracking to a shorter one, exactly like twitter-text's endHashtagMatch check
# done after the match. The lookahead demands one letter inside the run.
_TAG = (
    rf"(?<!{_NOT_BEFORE})[#\uff03](?![\ufe0f\u20e3])"
    rf"(?=[\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}]*?\p{{L}})"
    rf"({_ALNUM}++)"
    r"(?![#\uff03]|://)"
)

# URLs. A '#' inside a URL is never a tag. A URL is found from its marker, `://` (any scheme) or a
# host's last label of letters followed by '/' (`x.com/`, `www.example.co.uk:8080/`), and runs from
# the marker over URL characters (twitter-text's URL path characters plus any letter, digit, mark,
# '#' and '?'). Nothing before the marker can hold a '#' that is not already excluded by the tag
# rules ('#http://x' is not a tag: a tag may not be followed by '://').
_URL_MARK_RE = regex.compile(r"://|(?<=[\w\-])\.[^\W\d_]{2,63}(?::[0-9]{1,5})?/", regex.V1)
_URL_BODY_RE = regex.compile(r"[\w!*';:=+,.$/%#\uff03\[\]\-\u2013~@|&?()]*+", regex.V1)

_TAG_RE = regex.compile(_TAG, regex.V1)

# A key: the image of tag characters under normalize_tag ('～' becomes '~'), with a letter, not
# starting with what may not follow '#', not ending with a joiner.
_KEY_RE = regex.compile(
    rf"(?![\ufe0f\u20e3])(?=[\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}~]*?\p{{L}})"
    rf"[\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}~]++(?<![{_JOINERS}])",
    regex.V1,
)


def _url_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    pos = 0
    while True:
        mark = _URL_MARK_RE.search(text, pos)
        if mark is None:
            return spans
        end = _URL_BODY_RE.match(text, mark.end()).end()
        spans.append((mark.start(), end))
        pos = end


def _tags_outside_urls(text: str) -> list[str]:
    spans = _url_spans(text)
    if not spans:
        return _TAG_RE.findall(text)
    tags = []
    spans.append((len(text) + 1, len(text) + 1))  # sentinel
    i = 0
    for m in _TAG_RE.finditer(text):
        at = m.start()
        while spans[i][1] <= at:
            i += 1
        if at < spans[i][0]:
            tags.append(m.group(1))
    return tags


def extract_hashtags(text: str) -> list[str]:
    """Hashtags in ``text`` as written (without ``#``/``＃``), in order of appearance, repeats kept.

    Never raises on any ``str`` (lone surrogates, control characters, any length); linear time.
    """
    if "#" not in text and "\uff03" not in text:
        return []
    slash = text.find("/")
    if slash >= 0 and (text.find("#", slash) >= 0 or text.find("\uff03", slash) >= 0):
        # A '#' after a '/': it may be inside a URL.
        tags = _tags_outside_urls(text)
    else:
        tags = _TAG_RE.findall(text)
    if "\u200c" in text or "\u200d" in text:
        tags = [t.rstrip(_JOINERS) for t in tags]
    return tags


def _normalize_step(tag: str) -> str:
    key = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", tag).casefold())
    if " " in key:
        key = unicodedata.normalize("NFKC", key.replace(" ", ""))
    return key


def normalize_tag(tag: str) -> str:
    """The key of a tag: NFKC + full case folding (+ NFKC, spaces removed), idempotent."""
    if tag.isascii():
        return tag.lower()
    if len(tag) <= _CACHED_LENGTH:
        return _normalize_cached(tag)
    return _normalize_unicode(tag)


def _normalize_unicode(tag: str) -> str:
    key = _normalize_step(tag)
    for _ in range(8):  # converges after one step for every code point; bounded anyway
        nxt = _normalize_step(key)
        if nxt == key:
            break
        key = nxt
    return key


# Tags are Zipf-distributed, so most normalisations are cache hits. Only short strings are cached
# (bounded memory even when callers pass arbitrary input, e.g. URL path names).
_CACHED_LENGTH = 2 * MAX_TAG_LENGTH
_normalize_cached = functools.lru_cache(maxsize=1 << 15)(_normalize_unicode)


def is_valid_key(key: str) -> bool:
    """True iff ``key`` is a normalised key within ``MAX_TAG_LENGTH`` that a hashtag can have.

    Used to validate ``/tags/<name>`` path names and top-posts hashtags. Every key returned by
    :func:`distinct_tags` is valid.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_TAG_LENGTH:
        return False
    if _KEY_RE.fullmatch(key) is None:
        return False
    return normalize_tag(key) == key


def distinct_tags(text: str, limit: int | None = None) -> list[tuple[str, str]]:
    """Distinct keys of the tags in ``text``, in order of first appearance, each with its first
    spelling: ``[(key, spelling), ...]``, at most ``limit`` of them (the first ones). Tags longer
    than ``MAX_TAG_LENGTH`` characters, and tags whose key is not valid (e.g. it grew past the limit
    by case folding ``ß`` -> ``ss``), are skipped: they are never counted."""
    seen: dict[str, str] = {}
    for tag in extract_hashtags(text):
        if len(tag) > MAX_TAG_LENGTH:
            continue
        key = tag.lower() if tag.isascii() else _countable_key(tag)
        if key is not None and key not in seen:
            seen[key] = tag
            if len(seen) == limit:
                break
    return list(seen.items())


@functools.lru_cache(maxsize=1 << 15)
def _countable_key(tag: str) -> str | None:  # tag: at most MAX_TAG_LENGTH characters
    key = normalize_tag(tag)
    return key if is_valid_key(key) else None
