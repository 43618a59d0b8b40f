"""SIGTERM to the real server process (``python -m serving.server``, two workers as on a 2-vCPU
instance): Cloud Run sends SIGKILL 10 s after SIGTERM, so the server must stop accepting, close its
idle keep-alive connections and exit by itself before then."""
from __future__ import annotations

import signal
import socket
import subprocess

from tests.integration.web_server import running_server

CLOUD_RUN_GRACE_S = 10


def read_response(s: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) off a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += s.recv(4096)
    return head + b"\r\n\r\n" + body


def test_sigterm_with_idle_keep_alive_connections_exits_cleanly_within_cloud_runs_grace(tmp_path):
    log = tmp_path / "server.log"
    with running_server(env={"WEB_CONCURRENCY": "2"}, log=log) as srv:
        idle = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            # a page (the app's threads, Content-Length): /healthz is granian's, chunked
            s.sendall(b"GET /tags/love HTTP/1.1\r\nHost: test\r\n\r\n")
            assert read_response(s).startswith(b"HTTP/1.1 200")
            idle.append(s)  # kept alive, now idle
        srv.proc.send_signal(signal.SIGTERM)
        try:
            code = srv.proc.wait(CLOUD_RUN_GRACE_S)
        except subprocess.TimeoutExpired:
            code = None
        closed = sum(s.recv(1) == b"" for s in idle)
        refused = socket.socket().connect_ex(("127.0.0.1", srv.port))
        for s in idle:
            s.close()
    assert code == 0, log.read_text()[-2000:]
    assert closed == 50
    assert refused != 0
    assert "Killing worker" not in log.read_text(), "every worker stopped by itself"
