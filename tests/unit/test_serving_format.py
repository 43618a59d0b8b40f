"""Compact counts and tag-name resolution."""
import pytest

from serving.format import compact_number, exact_posts_label, posts_label
from serving.names import resolve


@pytest.mark.parametrize("n, text", [
    (0, "0"), (1, "1"), (999, "999"), (1000, "1K"), (1049, "1K"), (1234, "1.2K"), (9999, "9.9K"),
    (10_000, "10K"), (12_345, "12K"), (999_999, "999K"), (1_000_000, "1M"), (1_299_999, "1.2M"),
    (12_500_000, "12M"), (2_000_000_000, "2B"), (3_400_000_000_000, "3.4T"),
])
def test_compact_number(n, text):
    assert compact_number(n) == text


def test_labels():
    assert posts_label(1) == "1 post" and posts_label(0) == "0 posts" and posts_label(1_234_567) == "1.2M posts"
    assert exact_posts_label(1) == "1 post" and exact_posts_label(1_234_567) == "1,234,567 posts"


def test_resolve():
    assert resolve("love").key == "love" and resolve("love").canonical
    assert resolve("Love").key == "love" and not resolve("Love").canonical
    assert resolve("#love").key == "love" and not resolve("#love").canonical
    assert resolve("＃love").key == "love"
    for bad in ("", "#", "##love", "<script>", "a b", "x\x00", "\ud800", "a" * 101, "a" * 10_000, "123"):
        assert resolve(bad) is None, bad
