"""Every status the service sends, read off the wire from the real server process
(``python -m serving.server``, granian, production configuration) around an app with an in-memory
store (tests/integration/web_server.py), over raw sockets: what the app answers carries the security
headers, whoever inside it generates the response (tag router, Flask, error handlers, the request
size limits); what granian's HTTP engine answers itself is bare, and only for what it cannot hand
to the app at all (serving/server.py; the app-side limits are serving/views.py ``over_limit``)."""
from __future__ import annotations

import re
import socket
from typing import NamedTuple

import pytest

from tests.integration.web_server import HOT_TAG, running_server

SECURITY = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy",
            "cross-origin-opener-policy")


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # names lowercased; one value each (the service repeats none)
    body: bytes


def exchange(port: int, raw: bytes) -> Answer:
    """Send ``raw`` as is, read until the server closes (requests say ``Connection: close``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, body)


def request(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.fixture(scope="module")
def up():
    with running_server("memory_app") as srv:
        yield srv.port


@pytest.fixture(scope="module")
def down():
    with running_server("outage_app") as srv:
        yield srv.port


def assert_security_headers(a: Answer) -> None:
    assert {h: a.headers.get(h) for h in SECURITY} == {
        "content-security-policy": a.headers.get("content-security-policy"),
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "strict-origin-when-cross-origin",
        "cross-origin-opener-policy": "same-origin",
    }
    csp = a.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp


def etag(port: int) -> str:
    return exchange(port, request(f"/tags/{HOT_TAG}")).headers["etag"]


# status -> (server fixture, request builder)
CASES = {
    200: ("up", lambda port: request(f"/tags/{HOT_TAG}")),
    301: ("up", lambda port: request(f"/tags/{HOT_TAG.upper()}")),
    304: ("up", lambda port: request(f"/tags/{HOT_TAG}", headers={"If-None-Match": etag(port)})),
    404: ("up", lambda port: request("/tags/nosuchtag")),
    405: ("up", lambda port: request(f"/tags/{HOT_TAG}", method="POST", headers={"Content-Length": "0"})),
    414: ("up", lambda port: request("/tags/" + "a" * 9_000)),
    431: ("up", lambda port: request(f"/tags/{HOT_TAG}", headers={"X-Big": "a" * 40_000})),
    503: ("down", lambda port: request(f"/tags/{HOT_TAG}")),
}


@pytest.mark.parametrize("status", sorted(CASES))
def test_every_app_status_carries_the_security_headers(status, request_fixture):
    which, build = CASES[status]
    port = request_fixture(which)
    a = exchange(port, build(port))
    assert a.status == status
    assert_security_headers(a)


@pytest.fixture
def request_fixture(request):
    return request.getfixturevalue


def test_the_api_error_for_a_too_long_url_is_json_with_the_headers(up):
    a = exchange(up, request("/api/tags/" + "a" * 9_000))
    assert (a.status, a.headers["content-type"]) == (414, "application/json")
    assert_security_headers(a)


# What granian's HTTP engine (hyper 1.12) answers itself: nothing the app could be given. Bare:
# status line, date, content-length 0, connection close; no body, no type, so nothing a browser
# could render, sniff or frame (and browsers cannot send these; Google's front end rejects them first).
UNPARSEABLE = {
    "malformed request line": (b"GARBAGE\r\n\r\n", 400),
    "space inside the target": (b"GET /tags/lo ve HTTP/1.1\r\nHost: test\r\n\r\n", 400),
    "control byte in the target": (b"GET /tags/a\x01b HTTP/1.1\r\nHost: test\r\n\r\n", 400),
    "header line without a colon": (b"GET /tags/love HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n", 400),
    "unknown HTTP version": (b"GET /tags/love HTTP/9.9\r\nHost: test\r\n\r\n", 400),
    # hyper checks its 64 KiB read-buffer limit between reads: heads up to ~2x that are still parsed
    # (100 KB was, 130 KB was not) and the app answers those itself.
    "head far over the HTTP/1 buffer": (b"GET /tags/love HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 200_000
                                        + b"\r\n\r\n", 431),
    "URI over hyper's 65,534 bytes": (b"GET /tags/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 414),
    "more than 100 header lines": (b"GET /tags/love HTTP/1.1\r\nHost: test\r\n"
                                   + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
}


@pytest.mark.parametrize("case", sorted(UNPARSEABLE))
def test_what_the_server_answers_itself_is_bare_and_only_what_it_cannot_parse(up, case):
    raw, status = UNPARSEABLE[case]
    a = exchange(up, raw)
    assert (a.status, a.body, a.headers.get("content-length"), a.headers.get("connection"),
            a.headers.get("content-type")) == (status, b"", "0", "close", None)
    assert not any(h in a.headers for h in SECURITY)


def test_limits_sit_between_the_app_and_the_server(up):
    """Just under the app's limits the page answers; just over, the app's own 414 / 431."""
    from serving.views import MAX_HEADER_BYTES, MAX_URL_CHARS

    just_under = "X" * (MAX_HEADER_BYTES - 200)
    assert exchange(up, request(f"/tags/{HOT_TAG}", headers={"X-Big": just_under})).status == 200
    over_buffer = exchange(up, request(f"/tags/{HOT_TAG}", headers={"X-Big": "X" * 100_000}))
    assert (over_buffer.status, "x-frame-options" in over_buffer.headers) == (431, True), "app, not server"
    assert exchange(up, request(f"/tags/{HOT_TAG}?" + "q" * (MAX_URL_CHARS - 20))).status == 200
    long_query = exchange(up, request(f"/tags/{HOT_TAG}?" + "q" * (MAX_URL_CHARS + 1)))
    assert (long_query.status, "x-frame-options" in long_query.headers) == (414, True)
    assert re.search(rb"<html", long_query.body)
