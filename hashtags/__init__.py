"""The hashtag domain: pure logic, no I/O.

Public API: ``from hashtags import extract_hashtags, normalize_tag``.
"""
from hashtags.text import distinct_tags, extract_hashtags, is_valid_key, normalize_tag

__all__ = ["extract_hashtags", "normalize_tag", "distinct_tags", "is_valid_key"]
