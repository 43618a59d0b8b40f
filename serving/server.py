"""The production web server, granian, running ``serving.wsgi:app``: ONE configuration for the
container, the local stack and the benchmark (``server_config(env)`` reads the environment).

    python -m serving.server [--host 0.0.0.0] [--port $PORT] [--app serving.wsgi:app] [--factory]

Why granian and each value: docs/SERVING.md "Web server"; figures: docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEFAULT_APP = "serving.wsgi:app"
# GET /healthz is answered by granian's own static-file handler (Rust, in each worker) from
# serving/health/index.txt ("ok"), never by a Python thread: with the store paused under load every
# blocking thread waited on reads and /healthz took 4.0 s (issue 21), long enough for a liveness
# probe to restart a healthy instance in the middle of an outage. It says what liveness asks: the
# worker runs and takes requests. The Flask route of the same path answers where granian does not
# run (tests, other servers). /readyz stays in Python: it reads the store.
HEALTH_ROUTE = "/healthz"
HEALTH_DIR = Path(__file__).with_name("health")
HEALTH_FILE = "index.txt"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    workers: int
    threads: int
    backlog: int
    backpressure: int
    header_read_timeout_ms: int
    http1_buffer: int
    kill_timeout_s: int


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    return int(raw) if raw.strip() else default


def server_config(env: Mapping[str, str] = os.environ) -> ServerConfig:
    return ServerConfig(
        workers=_int(env, "WEB_CONCURRENCY", multiprocessing.cpu_count()),
        threads=_int(env, "WEB_THREADS", 16),
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
        static_path_route=[HEALTH_ROUTE],
        static_path_mount=[HEALTH_DIR],
        static_path_dir_to_file=HEALTH_FILE,
        static_path_expires=None,
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
