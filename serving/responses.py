"""What a tag route sends: a :class:`Reply` (status, headers, body) written straight to WSGI, with
the page's validators (strong ETags per coding, 304 on the weak comparison, gzip negotiation) and
the security headers every reply carries (Flask's routes get them in ``create_app``)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Iterable

from werkzeug.http import HTTP_STATUS_CODES, parse_accept_header

from hashtags.settings import Settings
from serving.cache import Body

HTML = "text/html; charset=utf-8"
JSON = "application/json"
REDIRECT_MAX_AGE = 86_400
NOT_FOUND_MAX_AGE = 10
_STATUS_LINES = {code: f"{code} {reason.upper()}" for code, reason in HTTP_STATUS_CODES.items()}


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    def send(self, start_response: Callable, security: list[tuple[str, str]], head: bool) -> Iterable[bytes]:
        start_response(_STATUS_LINES[self.status], self.headers + security)
        return [b"" if head else self.body]


@functools.lru_cache(maxsize=256)  # a handful of distinct values in practice; parsing costs µs
def accepts_gzip(header: str | None) -> bool:
    """``Accept-Encoding`` allows gzip: its own q-value (or x-gzip's), else ``*``'s, is non-zero."""
    q = dict(parse_accept_header(header))
    return q.get("gzip", q.get("x-gzip", q.get("*", 0))) > 0


def not_modified(if_none_match: str | None, body: Body) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2): ``W/"x"`` matches ``"x"``.
    Either coding's tag matches: both name the same content."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return f'"{body.etag}"' in if_none_match or f'"{body.gzip_etag}"' in if_none_match


def page(settings: Settings, body: Body, environ: dict, mimetype: str, x_cache: str) -> Reply:
    """200 with the cached bytes (gzip if accepted), or 304 when the client's copy is current."""
    gz = accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING"))
    headers = [
        ("ETag", f'"{body.gzip_etag if gz else body.etag}"'),
        ("Cache-Control", f"public, max-age={settings.browser_max_age}, "
                          f"stale-while-revalidate={settings.stale_while_revalidate}"),
        ("Vary", "Accept-Encoding"),
        ("X-Cache", x_cache),
    ]
    if not_modified(environ.get("HTTP_IF_NONE_MATCH"), body):
        return Reply(304, headers)
    data = body.gzip_data if gz else body.data
    headers[:0] = [("Content-Type", mimetype), ("Content-Length", str(len(data)))]
    if gz:
        headers.append(("Content-Encoding", "gzip"))
    return Reply(200, headers, data)


def redirect(location: str) -> Reply:
    return Reply(301, [("Location", location), ("Cache-Control", f"public, max-age={REDIRECT_MAX_AGE}"),
                       ("Content-Length", "0")])


def error(status: int, mimetype: str, body: bytes, extra: list[tuple[str, str]]) -> Reply:
    return Reply(status, [("Content-Type", mimetype), ("Content-Length", str(len(body))), *extra], body)
