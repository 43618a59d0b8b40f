"""Display helpers: compact counts (``1.2M posts``) with the exact figure for a ``title``."""
from __future__ import annotations

_UNITS = ((1_000_000_000_000, "T"), (1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K"))


def compact_number(n: int) -> str:
    """``999`` → ``999``, ``1234`` → ``1.2K``, ``12_345`` → ``12K``, ``1_299_999`` → ``1.2M``.

    Truncates rather than rounds, so the compact form never overstates the count (and 999,999 is
    ``999K``, never ``1000K``); one decimal only below 10 of a unit, none for a whole unit."""
    if n < 1000:
        return str(n)
    for size, suffix in _UNITS:
        if n >= size:
            if n < 10 * size:
                tenths = n * 10 // size
                whole, frac = divmod(tenths, 10)
                return f"{whole}.{frac}{suffix}" if frac else f"{whole}{suffix}"
            return f"{n // size}{suffix}"
    raise AssertionError("unreachable")


def posts_label(n: int) -> str:
    return f"{compact_number(n)} {'post' if n == 1 else 'posts'}"


def exact_posts_label(n: int) -> str:
    return f"{n:,} {'post' if n == 1 else 'posts'}"
