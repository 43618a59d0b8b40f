"""Why the request log costs more server CPU in the running server than in-process.

    .venv/bin/python bench/bench_log_in_server.py [--seconds 10] [--rounds 2] [--write]

bench_access_log measures the JSON request line at ~+80 µs of CPU per request in-process, while
bench_http sees the server's CPU per hot page rise by ~120-170 µs when the line is on. This runs the
production server (``python -m serving.server``, granian, one worker, with 1 and with 8 threads)
around the real app and an in-memory store holding ``#love``, drives ``GET /tags/love`` with wrk
(1 thread, 16 connections), and compares, in the same invocation and interleaved by round:

- ``no log``: ``Settings(access_log=False)``;
- ``JSON log``: the production line (``HASHTAGS_LOG_FORMAT=json``) to /dev/null, with the CPU time of
  ``AccessLog._log`` measured inside the worker (``time.thread_time_ns`` around each call);
- ``no log + loop``: no line, but a pure-Python loop per request calibrated, in this process, to the
  line's one-thread in-worker CPU.

What the line costs in the worker with 1 vs 8 threads separates contention for the GIL from the
line's own work; what the loop adds separates the line from the server's own overhead. Factories
below are granian ``--factory`` targets; results go to docs/BENCHMARKS.md "Request log in the
server (issue 12)".
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_http import machine, run_wrk, stop, write_section  # noqa: E402
from devstack.emulators import free_port  # noqa: E402
from devstack.processes import wait_http  # noqa: E402

SECTION = "## Request log in the server (issue 12)"
THREADS = (1, 8)
LOOP_ENV = "BENCH_LOOP_N"
REPORT_ENV = "BENCH_LOG_REPORT"


# ---- granian factory targets (run in the server's worker) ---------------------------------------
def _app(**settings):
    from hashtags.layout import PageDocument, TopPost
    from hashtags.settings import Settings
    from serving import create_app
    from hashtag_ops import logs
    from serving.app import tune_gc

    logs.setup("web")  # as serving.wsgi does: JSON with HASHTAGS_LOG_FORMAT=json

    posts = tuple(TopPost(str(10**18 + i), f"https://img.example-cdn.com/p/{i:032x}.jpg") for i in range(100))
    doc = PageDocument("love", "Love", 1_234_567, posts, updated_at=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))

    class Store:
        def read_page(self, key):
            return doc if key == "love" else None

        def ping(self):
            pass

    app = create_app(Settings(**settings), Store())
    tune_gc()
    return app


def nolog_app():
    return _app(access_log=False)


def log_app():
    """The production line, with the CPU of each ``AccessLog._log`` call summed into a file."""
    import threading
    from serving.access_log import AccessLog

    app, original, lock, total = _app(), AccessLog._log, threading.Lock(), [0, 0]

    def timed(self, *args):
        t0 = time.thread_time_ns()
        original(self, *args)
        spent = time.thread_time_ns() - t0
        with lock:
            total[0] += spent
            total[1] += 1
            if total[1] % 1000 == 0:  # rarely: the file write is not part of what is measured
                Path(os.environ[REPORT_ENV]).write_text(f"{total[0]} {total[1]}")

    AccessLog._log = timed
    return app


def buffered_log_app():
    """``log_app`` with the handler writing into a 1 MiB buffer and never flushing per line: what the
    line costs without a write syscall (which releases the GIL) per request. Not a production setting
    (lines would wait in memory)."""
    import logging

    app = log_app()
    (handler,) = logging.getLogger().handlers
    handler.setStream(open(os.devnull, "w", buffering=1 << 20))
    handler.flush = lambda: None
    return app


def loop_app():
    app = _app(access_log=False)
    inner, n = app.wsgi_app, int(os.environ[LOOP_ENV])

    def wsgi(environ, start_response):
        out = inner(environ, start_response)
        _spin(n)
        return out

    app.wsgi_app = wsgi
    return app


def _spin(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


# ---- the driver ----------------------------------------------------------------------------------
class Row(NamedTuple):
    round: int
    threads: int
    base: tuple[float, float]  # (req/s, server CPU µs per request)
    line: tuple[float, float]
    in_worker: float  # µs of CPU per AccessLog._log call, in the worker
    loop_n: int
    loop: tuple[float, float]
    buffered: tuple[float, float]
    buffered_in_worker: float


def calibrate(target_us: float) -> int:
    """Loop iterations whose CPU time here is ``target_us``."""
    n = 2000
    t0 = time.thread_time_ns()
    for _ in range(500):
        _spin(n)
    per = (time.thread_time_ns() - t0) / 500 / 1000
    return max(1, round(n * target_us / per))


def measure(factory: str, threads: int, env_extra: dict, seconds: int) -> tuple[float, float]:
    """(req/s, server CPU µs per request) of ``GET /tags/love`` for one factory and thread count."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'bench'}", WEB_CONCURRENCY="1", WEB_THREADS=str(threads),
               HASHTAGS_LOG_FORMAT="json", **env_extra)
    proc = subprocess.Popen([sys.executable, "-m", "serving.server", "--host", "127.0.0.1", "--port", str(port),
                             "--app", f"bench_log_in_server:{factory}", "--factory"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60)
        url = f"http://127.0.0.1:{port}/tags/love"
        wrk = argparse.Namespace(threads=1, connections=16, duration=2)
        run_wrk(url, wrk)  # warm-up
        wrk.duration = seconds
        res = run_wrk(url, wrk, cpu_of={"server": proc.pid})
        if res["errors"]:
            raise SystemExit(f"{factory}: {res['errors']} failed requests")
        return res["rps"], res["cpu_us"]["server"]
    finally:
        stop(proc)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    load = os.getloadavg()
    rows, started = [], dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "log-cpu")
        for r in range(1, args.rounds + 1):
            n = None
            for threads in THREADS:
                base = measure("nolog_app", threads, {}, args.seconds)
                line = measure("log_app", threads, {REPORT_ENV: str(report)}, args.seconds)
                spent, calls = map(int, report.read_text().split())
                in_worker = spent / calls / 1000
                n = n or calibrate(in_worker)  # the line's CPU with one thread: no GIL contention
                loop = measure("loop_app", threads, {LOOP_ENV: str(n)}, args.seconds)
                buffered = measure("buffered_log_app", threads, {REPORT_ENV: str(report)}, args.seconds)
                spent, calls = map(int, report.read_text().split())
                rows.append(Row(r, threads, base, line, in_worker, n, loop, buffered, spent / calls / 1000))
                print(rows[-1], flush=True)
    text = [SECTION, "",
            f"`.venv/bin/python bench/bench_log_in_server.py --seconds {args.seconds} --rounds {args.rounds} --write` "
            f"({started:%Y-%m-%d %H:%M} UTC, {machine()}, load average before "
            f"{' '.join(f'{x:.2f}' for x in load)}). The production server (granian, 1 worker, 1 or 8 threads; "
            "production runs 8) around the real app and an in-memory `#love`, `GET /tags/love` (a page-cache "
            "hit) with wrk `-t1 -c16` on the same 2 cores; server CPU = user + system of its processes over "
            "the run. `_log`: the CPU the JSON line's `AccessLog._log` took inside the worker "
            "(`time.thread_time_ns` around each call). The loop is pure Python calibrated in the driver to "
            "the round's one-thread `_log` figure (the line's CPU without contention for the GIL). *Buffered*: "
            "the JSON line written into a 1 MiB buffer with no flush per line (no write syscall, hence no "
            "release of the GIL, per request; not a production setting).", "",
            "| round | threads | no log: µs/req (req/s) | JSON log: µs/req (req/s) | `_log` in the worker | "
            "no log + loop: µs/req (req/s) | JSON log buffered: µs/req (req/s), `_log` |",
            "|---|---|---|---|---|---|---|"]
    for row in rows:
        text.append(f"| {row.round} | {row.threads} | {row.base[1]:.0f} ({row.base[0]:,.0f}) | {row.line[1]:.0f} "
                    f"({row.line[0]:,.0f}) | {row.in_worker:.0f} µs | {row.loop[1]:.0f} ({row.loop[0]:,.0f}) | "
                    f"{row.buffered[1]:.0f} ({row.buffered[0]:,.0f}), {row.buffered_in_worker:.0f} µs |")
    text.append("")
    for threads in THREADS:
        mine = [row for row in rows if row.threads == threads]
        line_rise = sum(r.line[1] - r.base[1] for r in mine) / len(mine)
        loop_rise = sum(r.loop[1] - r.base[1] for r in mine) / len(mine)
        own = sum(r.in_worker for r in mine) / len(mine)
        buffered_rise = sum(r.buffered[1] - r.base[1] for r in mine) / len(mine)
        buffered_own = sum(r.buffered_in_worker for r in mine) / len(mine)
        text.append(f"- {threads} thread(s), mean of the rounds: the line raises the server's CPU per request "
                    f"by {line_rise:.0f} µs, its own CPU in the worker is {own:.0f} µs, a loop of the line's "
                    f"uncontended CPU raises it by {loop_rise:.0f} µs; buffered, the line raises it by "
                    f"{buffered_rise:.0f} µs and costs {buffered_own:.0f} µs in the worker.")
    print("\n".join(text))
    if args.write:
        write_section("\n".join(text), SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
