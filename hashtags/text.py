"""PLACEHOLDER — being replaced by the twitter-text conformant implementation."""
from __future__ import annotations

import re
import unicodedata

from hashtags.settings import MAX_TAG_LENGTH

_TAG = re.compile(r"(?:^|(?<=[^\w&]))[#＃]([\w\u200c\u200d]*[^\W\d_][\w\u200c\u200d]*)")


def extract_hashtags(text: str) -> list[str]:
    return [m.group(1) for m in _TAG.finditer(text)]


def normalize_tag(tag: str) -> str:
    return unicodedata.normalize("NFKC", tag).casefold()


def distinct_tags(text: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for tag in extract_hashtags(text):
        if len(tag) > MAX_TAG_LENGTH:
            continue
        key = normalize_tag(tag)
        seen.setdefault(key, tag)
    return list(seen.items())


def is_valid_key(key: str) -> bool:
    return bool(key) and len(key) <= MAX_TAG_LENGTH and normalize_tag(key) == key and extract_hashtags("#" + key) == [key]
