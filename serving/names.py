"""From the tag name in a URL to the row key: accept, redirect to the canonical spelling, or 404."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from hashtags import is_valid_key, normalize_tag
from hashtags.settings import MAX_TAG_LENGTH

# Cheap guard before normalising: NFKC can expand a character up to 18 times, so anything much
# longer than the limit can never become a valid key; refusing it early bounds the work per request.
_MAX_RAW_LENGTH = MAX_TAG_LENGTH * 4
_HASH_SIGNS = ("#", "\uff03")  # '#' and the fullwidth '＃' (twitter-text accepts both)


@dataclass(frozen=True)
class Resolved:
    key: str  # the normalised tag: the row key
    canonical: bool  # the URL already spells it exactly as the key


def resolve(name: str) -> Resolved | None:
    """The key for a requested name, or None if no valid hashtag can have that name (→ 404).

    One leading '#' (``/tags/%23love``) is accepted and redirected away, like any other
    non-canonical spelling (``Love``, ``ＬＯＶＥ``). Control characters, lone surrogates and names
    that do not normalise to a valid key are refused."""
    if not name or len(name) > _MAX_RAW_LENGTH:
        return None
    raw = name[1:] if name.startswith(_HASH_SIGNS) else name
    if not raw or any(unicodedata.category(c) in ("Cc", "Cs") for c in raw):
        return None
    key = normalize_tag(raw)  # total on str
    if not is_valid_key(key):
        return None
    return Resolved(key, canonical=(raw == name and key == name))


def quote_key(key: str) -> str:
    """The key as one percent-encoded path segment."""
    return quote(key, safe="")
