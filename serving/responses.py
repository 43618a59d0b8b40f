"""Building the response of a cached page: validators, caching and content-coding negotiation.

Shared by the Flask views and the cache-hit fast path (serving/fastpath.py), so both send exactly
the same headers."""
from __future__ import annotations

from hashtags.settings import Settings
from serving.cache import Body

HTML = "text/html; charset=utf-8"
JSON = "application/json"


def cache_control(settings: Settings) -> str:
    return f"public, max-age={settings.browser_max_age}, stale-while-revalidate={settings.stale_while_revalidate}"


def accepts_gzip(header: str | None) -> bool:
    """``Accept-Encoding`` allows gzip (``gzip`` or ``*`` with a non-zero q-value)."""
    if not header or ("gzip" not in header and "*" not in header):
        return False
    star = None
    for part in header.split(","):
        coding, _, params = part.partition(";")
        coding = coding.strip().lower()
        q = 1.0
        params = params.strip().replace(" ", "")
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return bool(star)


def not_modified(if_none_match: str | None, body: Body) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2): ``W/"x"`` matches ``"x"``.
    Either coding's tag matches: both name the same content."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return f'"{body.etag}"' in if_none_match or f'"{body.gzip_etag}"' in if_none_match


def page_headers(settings: Settings, body: Body, *, gz: bool, mimetype: str, x_cache: str,
                 status: int) -> list[tuple[str, str]]:
    headers = [
        ("ETag", f'"{body.gzip_etag if gz else body.etag}"'),
        ("Cache-Control", cache_control(settings)),
        ("Vary", "Accept-Encoding"),
        ("X-Cache", x_cache),
    ]
    if status == 200:
        data = body.gzip_data if gz else body.data
        headers[:0] = [("Content-Type", mimetype), ("Content-Length", str(len(data)))]
        if gz:
            headers.append(("Content-Encoding", "gzip"))
    return headers
