"""What the production server (granian) hands the app for hostile request targets, end to end: the
duplicate-slash redirect keeps a raw UTF-8 query as sent, and a path with %0a / %00 writes one log
line in either log format (issue 21)."""
from __future__ import annotations

import json
import socket
import time

import pytest

from tests.integration.web_server import running_server


def logged_app():
    """Granian factory target: memory_app with the process's logging set up as serving.wsgi does."""
    from hashtag_ops import logs
    from tests.integration.web_server import memory_app

    logs.setup("web")
    return memory_app()


def raw_get(port: int, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_forged_lines_and_the_redirect_query_through_the_server(tmp_path, fmt):
    log = tmp_path / "server.log"
    with running_server("tests.integration.test_serving_wire:logged_app", env={"HASHTAGS_LOG_FORMAT": fmt},
                        log=log) as srv:
        head = raw_get(srv.port, b"//tags/love?x=\xc3\xa9&y=%C3%A9").split(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 301")
        assert b"\r\nlocation: /tags/love?x=%c3%a9&y=%c3%a9" in head  # one encoding, bytes as sent
        reply = raw_get(srv.port, b"/tags/x%0aFAKE%20LINE%00end")
        assert reply.startswith(b"HTTP/1.1 404")
    text = log.read_bytes()
    assert b"\x00" not in text and b"FAKE LINE" in text
    lines = [line for line in text.decode("utf-8").split("\n") if "FAKE" in line]
    assert len(lines) == 1, lines  # the forged "line" is inside the request's own line
    if fmt == "json":
        entry = json.loads(lines[0])
        assert entry["httpRequest"]["requestUrl"].endswith("/tags/x%0AFAKE LINE%00end")
    else:
        assert "GET /tags/x%0AFAKE LINE%00end 404" in lines[0]


def test_healthz_is_answered_by_the_server_while_every_app_thread_is_busy():
    """/healthz comes from granian's static handler (serving/server.py), not from a Python thread:
    with the app's only blocking thread held by a request, /healthz still answers; a page waits."""
    with running_server("tests.integration.test_serving_wire:blocking_app", env={"WEB_THREADS": "1"}) as srv:
        held = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        held.sendall(b"GET /test/block HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.5)  # the one thread is now inside /test/block (it holds it for 5 s)
        page = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        page.settimeout(1.0)
        page.sendall(b"GET /tags/love HTTP/1.1\r\nHost: t\r\n\r\n")
        with pytest.raises(socket.timeout):
            page.recv(100)  # the app's thread is busy: a Python route waits
        reply = raw_get(srv.port, b"/healthz")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"ok\n" in body, reply
        assert held.recv(100).startswith(b"HTTP/1.1 200")  # the held request still completes
        page.close()
        held.close()


def blocking_app():
    """memory_app + GET /test/block, which holds its thread for 5 s."""
    from tests.integration.web_server import memory_app

    app = memory_app()
    app.add_url_rule("/test/block", "test_block", lambda: (time.sleep(5), "done")[1])
    return app


@pytest.mark.emulator
def test_every_web_read_rides_the_one_page_channel(store, tmp_path):
    """One Bigtable client family in the web tier (issue 21): a page, the readiness check and both
    trends routes all read through the store's plain ReadRows readers on its one channel; the data
    client (scans) and the classic client (writes), each measured ~3x the page read's cost
    (docs/BENCHMARKS.md "Serving path (issue 12)"), are never created by serving."""
    import datetime as dt

    from hashtags.layout import TopPost
    from hashtags.messages import TopPostsUpdate
    from hashtags.settings import Settings
    from serving import create_app

    day = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    store.write_base_counts([("love", 1_000)], as_of=day)
    store.write_top_posts(TopPostsUpdate("love", day, (TopPost("p1", "https://img.example-cdn.com/1.jpg"),)))
    store.close()  # the writes' clients go with it: the app gets a store of its own
    from hashtag_store import BigtableStore

    fresh = BigtableStore(store._project, store._instance, store._table_id)
    client = create_app(Settings(), fresh).test_client()
    statuses = {path: client.get(path).status_code
                for path in ("/tags/love", "/api/tags/love", "/tags/nope", "/readyz", "/trends", "/api/v1/trends/tags")}
    assert statuses == {"/tags/love": 200, "/api/tags/love": 200, "/tags/nope": 404, "/readyz": 200,
                        "/trends": 200, "/api/v1/trends/tags": 200}
    assert fresh._data_client is None and fresh._writer is None
    assert fresh._pages.calls == 2  # love (the JSON is then a cache hit) and nope, through the coalescing reader
    fresh.close()
