"""The production web server: granian (a Rust HTTP server) running ``serving.wsgi:app``.

    python -m serving.server [--host 0.0.0.0] [--port $PORT] [--app serving.wsgi:app] [--factory]

ONE configuration for the container (docker/web/Dockerfile CMD), the local stack
(devstack/stack.py) and the benchmark (bench/bench_http.py). ``--app``/``--factory`` exist for tests
that serve an app built around an in-memory store through the same server and settings. Each value
below can be overridden by the environment variable shown beside it; ``server_config(env)`` is the
one place that reads them. Figures behind the choices: docs/BENCHMARKS.md "Web server (issue 12)".

Why granian: measured in one run beside nginx, same app code, gunicorn's per-request cost (its
Python HTTP parser and thread hand-offs, ~0.3 ms of CPU) held the cached page at 0.1-0.2 x nginx
and one thread per connection let 200 idle clients stop the service; granian parses HTTP and holds
connections in Rust and calls the WSGI app on a small pool of Python threads (cached page ~0.1 ms
of server CPU, 0.5-1 x nginx; normal requests answered beside 200 slow clients).

Why these values (verified in granian 2.8.7's source, .venv/.../granian/server/common.py, cli.py,
http.py, wsgi.py, and by trying the running server; hyper 1.12 is its HTTP/1 engine):
- interface WSGI, HTTP/1 only: Cloud Run talks HTTP/1.1 to the container (end-to-end HTTP/2 is an
  opt-in the service does not use); not accepting h2c removes an unused protocol.
- workers = CPUs (``WEB_CONCURRENCY``): one process per core; the Python part runs under the GIL.
  More processes only add memory and split the per-process page cache and Bigtable channel. The
  app is imported in each worker after granian forks it (``load_target`` runs in the worker), so
  the gRPC channel is created after the fork.
- threads = 8 per worker (``WEB_THREADS``; granian's ``blocking_threads``: the Python threads that
  run the WSGI app): enough to overlap a few Bigtable reads (GIL released while waiting) with the
  cheap cached requests (2 and 4 measured slower on uncached pages, 16 and a third worker not
  clearly faster); granian's default for WSGI is backpressure / 2 (256+) threads. Connections
  themselves are not threads: an idle or slow connection costs a Rust task and its buffer, never a
  Python thread.
- backpressure = 1024 connections per worker (``WEB_BACKPRESSURE``) and backlog 2048
  (``WEB_BACKLOG``). Granian's backpressure caps the ACCEPTED CONNECTIONS of a worker (tried: with
  backpressure 4 and 4 idle connections open, a fifth client waited until the header timeout closed
  one), not the requests in flight; it must stay well above Cloud Run's per-instance concurrency
  (terraform ``web_concurrency``, 80) plus idle keep-alive connections, or idle clients would
  starve real ones. Requests beyond the 8 threads wait in Rust, not in Python.
- header read timeout 10 s (``WEB_HEADER_READ_TIMEOUT_MS``): the time a client may take to send its
  request line and headers; a connection that has not sent a whole head by then is closed (tried:
  a request sent at 1 byte/s, an idle fresh connection and an idle keep-alive connection are each
  closed at the timeout). In hyper this is also the IDLE KEEP-ALIVE timeout (the timer restarts
  when a connection waits for its next request; granian has no separate keep-alive setting), so the
  one value trades slow-client exposure against connection reuse. Production: requests reach the
  container only through Google's front end (the external load balancer + Cloud Run's front end),
  which receives the whole request before forwarding it, so no slow client reaches the container;
  the 10 s bound is what protects the container when reached directly (local stack, a misrouted
  ingress). Behind the external load balancer the container is a serverless NEG: the balancer's
  600 s backend keep-alive applies to Cloud Run's front end, not to connections to this container,
  so the usual "keep-alive above 600 s" advice (for VM/GKE backends) does not apply here; gunicorn
  ran with 5 s. On a VM/GKE backend set 620000 and rely on the load balancer against slow clients.
- HTTP/1 buffer 64 KiB (``WEB_HTTP1_BUFFER``; granian default ~408 KiB): the largest request head
  hyper will read. It bounds memory per connection (1024 connections x ~128 KiB = 128 MiB worst
  case, vs ~800 MiB with the default, in a 512 MiB instance). The app answers 414 / 431 itself, with the
  security headers, for URLs over 8 KiB and header blocks over 32 KiB (serving/request_limits.py);
  only what the app cannot be given — an unparseable request line or header (400), a head over the
  buffer or more than 100 header lines (431), a request target over 65,534 bytes (414) — is
  answered by hyper itself, with an empty body, no content type and ``connection: close`` (hyper's
  ``on_parse_error``; granian has no hook for extra headers there). hyper checks the buffer limit
  between reads, so heads up to about twice the buffer still reach the app (tried: 100 KB did,
  130 KB did not). Browsers never send such requests, and in production Google's front end rejects
  malformed ones before Cloud Run.
- graceful shutdown: on SIGTERM granian stops accepting (new connections are refused), lets requests
  in flight finish and closes idle connections (tried: a 3 s request in flight at SIGTERM completed
  and the server exited 1.6 s later, an idle keep-alive connection did not delay it). Cloud Run
  sends SIGKILL 10 s after SIGTERM; a request does at most one store read with a 2 s deadline, and
  ``workers_kill_timeout`` 8 s (``WEB_KILL_TIMEOUT``) kills a worker that has not stopped by then,
  so the process exits before the SIGKILL.
- respawn failed workers: a worker that dies is replaced (granian exits instead if one crashes
  twice within 5.5 s, and Cloud Run restarts the container). No periodic recycling
  (``workers_lifetime``/``workers_max_rss`` unset): each respawn empties that worker's page cache,
  no leak is known, and Cloud Run replaces an instance that exceeds its memory limit.
- no access log here (granian's is off by default): the app writes one structured line per request
  (serving/access_log.py); granian's own log keeps start/stop and errors.
- WSGI environ: granian builds each request's environ from a copy of ``os.environ`` (granian/wsgi.py
  ``basic_env``), so process environment variables named ``HTTP_*`` would look like request headers
  to the app; none are set in the image. It sets no ``wsgi.url_scheme`` from ``X-Forwarded-Proto``
  (the app builds no absolute URLs).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
from dataclasses import dataclass
from typing import Mapping

DEFAULT_APP = "serving.wsgi:app"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    workers: int
    threads: int
    backlog: int
    backpressure: int
    header_read_timeout_ms: int
    http1_buffer: int
    kill_timeout_s: int

    def describe(self) -> str:
        return (f"granian WSGI, {self.workers} workers x {self.threads} threads, backpressure "
                f"{self.backpressure}/worker, header read timeout {self.header_read_timeout_ms / 1000:g} s, "
                f"HTTP/1 buffer {self.http1_buffer // 1024} KiB")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    return int(raw) if raw.strip() else default


def server_config(env: Mapping[str, str] = os.environ) -> ServerConfig:
    return ServerConfig(
        workers=_int(env, "WEB_CONCURRENCY", multiprocessing.cpu_count()),
        threads=_int(env, "WEB_THREADS", 8),
        backlog=_int(env, "WEB_BACKLOG", 2048),
        backpressure=_int(env, "WEB_BACKPRESSURE", 1024),
        header_read_timeout_ms=_int(env, "WEB_HEADER_READ_TIMEOUT_MS", 10_000),
        http1_buffer=_int(env, "WEB_HTTP1_BUFFER", 64 * 1024),
        kill_timeout_s=_int(env, "WEB_KILL_TIMEOUT", 8),
    )


def build_server(host: str, port: int, config: ServerConfig, app: str = DEFAULT_APP, factory: bool = False):
    """The granian server object (not started): ``build_server(...).serve()`` blocks until SIGTERM."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    return Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        workers=config.workers,
        blocking_threads=config.threads,
        backlog=config.backlog,
        backpressure=config.backpressure,
        http1_settings=HTTP1Settings(header_read_timeout=config.header_read_timeout_ms, keep_alive=True,
                                     max_buffer_size=config.http1_buffer),
        respawn_failed_workers=True,
        workers_kill_timeout=config.kill_timeout_s,
        log_access=False,
        factory=factory,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")), help="default: $PORT or 8080")
    p.add_argument("--app", default=DEFAULT_APP, help="WSGI target module:attribute")
    p.add_argument("--factory", action="store_true", help="the target is a function returning the app")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    build_server(args.host, args.port, server_config(), args.app, args.factory).serve()


if __name__ == "__main__":
    main()
