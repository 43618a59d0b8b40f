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
