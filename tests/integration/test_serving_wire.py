"""What the production server (granian) hands the app for hostile request targets, end to end: the
duplicate-slash redirect keeps a raw UTF-8 query as sent, and a path with %0a / %00 writes one log
line in either log format (issue 21)."""
from __future__ import annotations

import json
import socket

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
