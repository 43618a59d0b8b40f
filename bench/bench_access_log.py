"""What the request log (serving/access_log.py) adds per request, in-process: the hot page
(``GET /tags/love``, a cache hit) called through the WSGI app directly (no server, no socket), with
and without the middleware, the JSON line written by the same StructuredLogHandler as production
(to /dev/null), and the text handler for comparison. CPU time per request (process_time), the
variants interleaved, best of ``--rounds`` per variant.

    .venv/bin/python bench/bench_access_log.py [--requests 20000] [--rounds 7] [--write]

``--write`` replaces the "Request log (issue 10)" section of docs/BENCHMARKS.md."""
from __future__ import annotations

import argparse
import gc
import io
import logging
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hashtag_ops import logs  # noqa: E402
from hashtags.settings import Settings  # noqa: E402
from serving import create_app  # noqa: E402
from serving.access_log import LOGGER, AccessLog  # noqa: E402
from tests.unit.serving_fakes import FakeStore, doc  # noqa: E402

SECTION = "## Request log (issue 10)"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1"
HOT_REQUEST_CPU_US = 174  # the whole hot request through the production server ("HTTP serving" above)


def notes(added_json: float, added_discard: float, page: float) -> str:
    return (
        f"Where it goes: the middleware and the `LogRecord` (the discarding handler's row, +{added_discard:.0f} µs: "
        "the stdlib's `makeRecord`/`findCaller`/`handle` plus the request fields) and google-cloud-logging's "
        f"StructuredLogHandler (the rest of the +{added_json:.0f} µs: its filter infers request data for every "
        "record, then five `json.dumps` and a %-format of the envelope). The page itself costs "
        f"{page:.0f} µs here (a cache hit is a dict lookup and a prebuilt body); against the whole hot request "
        f"through the production server (~{HOT_REQUEST_CPU_US} µs of CPU) the JSON line adds about "
        f"{added_json / HOT_REQUEST_CPU_US:.0%}. Decision: on by default (`Settings.access_log`: the log-based "
        "metrics in terraform/monitoring.tf count these lines, and behind Cloud CDN the origin sees the misses "
        "and revalidations, not the hot-tag traffic); `HASHTAGS_ACCESS_LOG=false` turns it off (a load test "
        "of the server alone, or a deployment that relies on Cloud Run's own request log). Measured on a shared "
        "2-core machine under the load shown: compare the rows of one run, not runs.")


def environ() -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/tags/love", "QUERY_STRING": "", "SERVER_NAME": "bench",
            "SERVER_PORT": "80", "HTTP_HOST": "hashtags.example", "wsgi.url_scheme": "http",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "bench/1.0",
            "HTTP_ACCEPT_ENCODING": "gzip", "HTTP_X_CLOUD_TRACE_CONTEXT": TRACE,
            "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False}


def _start_response(status, headers, exc_info=None):
    return None


def per_request_us(wsgi, n: int) -> float:
    env = environ()
    for _ in range(200):  # warm: fill the page cache, the regex and template caches
        b = wsgi(dict(env), _start_response)
        getattr(b, "close", lambda: None)()
    t0 = time.process_time()
    for _ in range(n):
        b = wsgi(dict(env), _start_response)
        for _chunk in b:
            pass
        getattr(b, "close", lambda: None)()
    return (time.process_time() - t0) / n * 1e6


def variants():
    app = create_app(Settings(project="bench-project", access_log=False), FakeStore({"love": doc()}),
                     dev_images=False)
    inner = app.wsgi_app
    sink = open(os.devnull, "w")
    json_h, text_h = logs.json_handler("web", sink, "bench-project"), logs.text_handler(sink)
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO)

    def with_handler(handler):
        def run(n):
            LOGGER.handlers[:] = [handler]
            try:
                return per_request_us(AccessLog(inner, "bench-project"), n)
            finally:
                LOGGER.handlers[:] = []
        return run

    class Discard(logging.Handler):  # the middleware and the LogRecord, no formatting
        def emit(self, record):
            pass

    return {"no request log": lambda n: per_request_us(inner, n),
            "request log, a handler that discards": with_handler(Discard()),
            "request log, JSON (StructuredLogHandler)": with_handler(json_h),
            "request log, text": with_handler(text_h)}


def production_gc() -> None:
    """The collector settings of a production worker (serving/wsgi.py tune_gc: freeze, gen0 at
    50,000): with Python's defaults the records' allocations trigger collections over the whole heap."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    load = os.getloadavg()
    runs: dict[str, list[float]] = {}
    vs = variants()
    production_gc()
    for _ in range(args.rounds):
        for name, run in vs.items():
            runs.setdefault(name, []).append(run(args.requests))
    base = min(runs["no request log"])
    rows = []
    for name, values in runs.items():
        best = min(values)
        rows.append(f"| {name} | {best:.1f} | {best - base:+.1f} | "
                    + ", ".join(f"{v:.0f}" for v in sorted(values)) + " |")
    text = "\n".join([
        SECTION, "",
        f"`.venv/bin/python bench/bench_access_log.py --requests {args.requests} --rounds {args.rounds}` "
        f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}). "
        "The hot page `GET /tags/love` (a page-cache hit, gzip) through the app's WSGI callable, no "
        "server, with the production workers' garbage-collector settings; the JSON line goes through the "
        "production handler to /dev/null. CPU µs per request, "
        "best of the rounds (variants interleaved; all rounds listed).",
        "",
        "| variant | CPU µs/request (best) | vs no log | all rounds |",
        "|---|---|---|---|",
        *rows, "",
        notes(min(runs["request log, JSON (StructuredLogHandler)"]) - base,
              min(runs["request log, a handler that discards"]) - base, base), ""])
    print(text)
    if args.write:
        path = ROOT / "docs" / "BENCHMARKS.md"
        doc_text = path.read_text()
        pattern = re.compile(re.escape(SECTION) + r".*?(?=^## |\Z)", re.S | re.M)
        doc_text = pattern.sub(text + "\n", doc_text) if pattern.search(doc_text) else doc_text.rstrip() + "\n\n" + text
        path.write_text(doc_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
