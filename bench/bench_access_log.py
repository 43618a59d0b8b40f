"""What the request log (serving/access_log.py) adds per request, in-process, before and after it
was made cheaper, in one run: the hot page (``GET /tags/love``, a cache hit) called through the
WSGI app directly (no server, no socket), without the middleware, and with the middleware of this
checkout and of ``--baseline`` (serving/access_log.py and hashtag_ops/logs.py from ``git show``,
loaded beside these), each with a handler that discards the record, the JSON handler production
uses (to /dev/null) and the text handler. Before timing, the JSON lines of both for the same
requests must parse to the same fields (latency and the source line aside). CPU time per request
(process_time), the variants interleaved, best of ``--rounds`` per variant; with ``--instructions``,
also the machine instructions per request under valgrind's callgrind (each variant in a child
process, counted only around its request loop, at two loop lengths, the difference divided by the
extra requests): a count the other processes on a shared machine do not change.

    .venv/bin/python bench/bench_access_log.py [--requests 20000] [--rounds 7] [--baseline f3fe47e]
        [--instructions] [--write]

``--write`` replaces the "Request log (issue 10)" section of docs/BENCHMARKS.md."""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hashtag_ops import logs  # noqa: E402
from hashtags.settings import Settings  # noqa: E402
from serving import create_app  # noqa: E402
from serving.access_log import LOGGER  # noqa: E402
from serving.app import tune_gc  # noqa: E402
from tests.unit.serving_fakes import FakeStore, doc  # noqa: E402

SECTION = "## Request log (issue 10)"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BASELINE = "f3fe47e"  # the last commit with the request log as first written (6b14e69's figures)


STAGES = (("the middleware's fields, the LogRecord and Logger.handle", "no request log", "after, discarding handler"),
          ("the filter (ours)", "after, discarding handler", "after, JSON filter only"),
          ("the library's StructuredLogHandler.format", "after, JSON filter only", "after, JSON filter + format"),
          ("the write and flush", "after, JSON filter + format", "after, JSON"))


def where_it_goes(values: dict[str, float], unit: str, scale: float, digits: int) -> str:
    return "; ".join(f"{label} {(values[hi] - values[lo]) / scale:+,.{digits}f} {unit}" for label, lo, hi in STAGES)


def notes(best: dict[str, float], counted: dict[str, float], baseline: str) -> str:
    base = best["no request log"]
    added = {name: value - base for name, value in best.items()}
    split = where_it_goes(counted, "k instructions", 1000, 1) if counted else where_it_goes(best, "µs", 1, 0)
    return (
        f"Before ({baseline}): the JSON line added +{added['before, JSON']:.0f} µs, of which "
        f"+{added['before, discarding handler']:.0f} µs before any handler (the middleware, `Logger.log`'s "
        "`findCaller` walk, `makeRecord`) and the rest in google-cloud-logging's StructuredLogHandler, whose "
        "CloudLoggingFilter infers request data (OpenTelemetry, Django, Flask look-ups) for every record even "
        "when the record overrides all of it, and json.dumps the labels and source location, constant per "
        "logger and call site, every time. After: the access log gives every request field explicitly "
        "(trace None without one); `log_event` takes the caller's frame itself (`sys._getframe`, the frame "
        "`findCaller` returns) and makes and handles the record as "
        "`Logger._log` does; `json_handler` replaces the handler's filter with a CloudLoggingFilter subclass "
        "that, for a record carrying every request field, sets the same attributes without the inference and "
        "with the two constant strings memoised (any other record: the library's filter). The envelope is "
        "still the library's StructuredLogHandler.format; tests/unit/test_logs.py compares both filters' "
        "lines, tests/unit/test_access_log.py the whole parsed line. JSON line "
        f"+{added['before, JSON']:.0f} → +{added['after, JSON']:.0f} µs "
        f"({(best['after, JSON'] - base) / (best['before, JSON'] - base):.2f} ×); the page itself costs "
        f"{base:.0f} µs here. Where the rest goes (after, from the rows above): {split}. Not done: "
        "`logging.logThreads/logProcesses/logMultiprocessing = False` (process-wide switches; about 8 k "
        "instructions, 3 % of the line, measured the same way). The text form (local only, and what a server "
        "started without `HASHTAGS_LOG_FORMAT=json` writes, e.g. bench/bench_http.py's) is our "
        "TextFormatter. Measured on a shared 2-core machine under the load "
        "shown: compare the rows of one run, not runs.")


def instruction_rows(counted: dict[str, float]) -> list[str]:
    if not counted:
        return []
    base = counted["no request log"]
    rows = []
    for name, value in counted.items():
        before = counted.get(name.replace("after", "before")) if name.startswith("after") else None
        ratio = f"{(value - base) / (before - base):.2f} ×" if before else ""
        rows.append(f"| {name} | {value / 1000:,.1f} k | {(value - base) / 1000:+,.1f} k | {ratio} |")
    return ["Machine instructions per request (`--instructions`: valgrind 3.19 callgrind, each variant in "
            f"a child process, counted around loops of {LOOPS[0]:,} and {LOOPS[1]:,} requests, the "
            "difference divided by the extra requests; PYTHONHASHSEED=0). Unlike the CPU times, these do "
            "not move with the machine's load.", "",
            "| variant | instructions/request | vs no log | added, after / before |", "|---|---|---|---|",
            *rows, ""]


def load_baseline(rev: str, folder: Path):
    """serving/access_log.py and hashtag_ops/logs.py at ``rev``, as modules baseline_access_log and
    baseline_logs (the former's import of hashtag_ops.logs pointed at the latter)."""
    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    access = show("serving/access_log.py")
    assert "from hashtag_ops.logs import" in access
    (folder / "baseline_logs.py").write_text(show("hashtag_ops/logs.py"))
    (folder / "baseline_access_log.py").write_text(access.replace("from hashtag_ops.logs import",
                                                                  "from baseline_logs import"))
    modules = []
    for name in ("baseline_logs", "baseline_access_log"):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


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


COUNTED = ("no request log", "before, discarding handler", "after, discarding handler", "before, JSON",
           "after, JSON", "after, JSON filter only", "after, JSON filter + format")
LOOPS = (200, 1200)  # requests per counted loop (each after the same 200 warm-up requests)


def count_child(run, n: int) -> None:
    """In a process under callgrind (--instr-atstart=no): instrument only the request loop."""
    run(200)
    control = ["callgrind_control", "-i"]
    subprocess.run([*control, "on", str(os.getpid())], check=True, capture_output=True)
    run(n)
    subprocess.run([*control, "off", str(os.getpid())], check=True, capture_output=True)


def instructions_per_request(baseline: str) -> dict[str, float]:
    out = {}
    for name in COUNTED:
        counts = []
        for n in LOOPS:
            child = subprocess.run(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null",
                 sys.executable, __file__, "--baseline", baseline, "--count", name, str(n)],
                capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True)
            counts.append(int(re.search(r"Collected : (\d+)", child.stderr).group(1)))
        out[name] = (counts[1] - counts[0]) / (LOOPS[1] - LOOPS[0])
    return out


class Discard(logging.Handler):  # the middleware and the LogRecord, no formatting
    def emit(self, record):
        pass


class Stage(logging.Handler):
    """The JSON handler's filter, then its format or nothing, and no write: where its cost goes."""
    def __init__(self, json_handler: logging.Handler, formats: bool):
        super().__init__()
        self.json_handler, self.formats = json_handler, formats
        for f in json_handler.filters:
            self.addFilter(f)

    def emit(self, record):
        if self.formats:
            self.json_handler.format(record)


def attached(handler, run):
    LOGGER.handlers[:] = [handler]
    try:
        return run()
    finally:
        LOGGER.handlers[:] = []


def inner_app():
    app = create_app(Settings(project="bench-project", access_log=False), FakeStore({"love": doc()}))
    return app.wsgi_app


def same_lines(old_access, old_logs) -> int:
    """The JSON lines of the baseline and of this checkout for the same requests (each through a
    fresh app: a miss, then hits), compared parsed (latency and the source line differ by nature);
    exits if any field differs."""
    requests = [environ(), {**environ(), "HTTP_X_CLOUD_TRACE_CONTEXT": "", "HTTP_TRACEPARENT": TRACEPARENT},
                {**environ(), "HTTP_X_CLOUD_TRACE_CONTEXT": "", "PATH_INFO": "/healthz",
                 "HTTP_X_FORWARDED_FOR": "203.0.113.9, 10.0.0.1"},
                {**environ(), "PATH_INFO": "/tags/nosuchtag", "QUERY_STRING": "a=1"}]
    parsed = []
    for access, handler_of in ((old_access, old_logs.json_handler), (sys.modules["serving.access_log"],
                                                                     logs.json_handler)):
        stream, inner = io.StringIO(), inner_app()
        attached(handler_of("web", stream, "bench-project"),
                 lambda: [b"".join(access.AccessLog(inner, "bench-project")(dict(env), _start_response))
                          for env in requests])
        lines = [json.loads(line) for line in stream.getvalue().split("\n") if line]
        for line in lines:
            line["httpRequest"].pop("latency")
            line["logging.googleapis.com/sourceLocation"].pop("line")
            line["logging.googleapis.com/sourceLocation"].pop("file")
        parsed.append(lines)
    if parsed[0] != parsed[1] or len(parsed[1]) != len(requests):
        raise SystemExit(f"the JSON lines differ:\n{parsed[0]}\n{parsed[1]}")
    return len(requests)


def variants(inner, old_access, old_logs):
    sink = open(os.devnull, "w")

    def with_handler(access, handler):
        return lambda n: attached(handler, lambda: per_request_us(access.AccessLog(inner, "bench-project"), n))

    new_access = sys.modules["serving.access_log"]
    json_h = logs.json_handler("web", sink, "bench-project")
    return {"no request log": lambda n: per_request_us(inner, n),
            "before, discarding handler": with_handler(old_access, Discard()),
            "after, discarding handler": with_handler(new_access, Discard()),
            "before, JSON": with_handler(old_access, old_logs.json_handler("web", sink, "bench-project")),
            "after, JSON": with_handler(new_access, json_h),
            "after, JSON filter only": with_handler(new_access, Stage(json_h, formats=False)),
            "after, JSON filter + format": with_handler(new_access, Stage(json_h, formats=True)),
            "before, text": with_handler(old_access, old_logs.text_handler(sink)),
            "after, text": with_handler(new_access, logs.text_handler(sink))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--baseline", default=BASELINE, help="the commit whose request log is 'before'")
    p.add_argument("--instructions", action="store_true", help="also count instructions under callgrind")
    p.add_argument("--count", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)  # the child
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    load = os.getloadavg()
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO)
    inner = inner_app()
    with tempfile.TemporaryDirectory() as tmp:
        old_logs, old_access = load_baseline(args.baseline, Path(tmp))
    vs = variants(inner, old_access, old_logs)
    if args.count:
        tune_gc()  # a production worker's collector: with the defaults the records trigger full collections
        count_child(vs[args.count[0]], int(args.count[1]))
        return 0
    compared = same_lines(old_access, old_logs)
    tune_gc()
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, run in vs.items():
            runs.setdefault(name, []).append(run(args.requests))
    best = {name: min(values) for name, values in runs.items()}
    counted = instructions_per_request(args.baseline) if args.instructions else {}
    base = best["no request log"]
    rows = []
    for name, values in runs.items():
        before = best.get(name.replace("after", "before")) if name.startswith("after") else None
        ratio = f"{(best[name] - base) / (before - base):.2f} ×" if before else ""
        rows.append(f"| {name} | {best[name]:.1f} | {best[name] - base:+.1f} | {ratio} | "
                    + ", ".join(f"{v:.0f}" for v in sorted(values)) + " |")
    text = "\n".join([
        SECTION, "",
        f"`.venv/bin/python bench/bench_access_log.py --requests {args.requests} --rounds {args.rounds} "
        f"--baseline {args.baseline}{' --instructions' if args.instructions else ''}` ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average before "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}). The hot page `GET /tags/love` (a page-cache hit, gzip, "
        "an X-Cloud-Trace-Context header) through the app's WSGI callable, no server, with the production "
        "workers' garbage-collector settings; *before* is serving/access_log.py and hashtag_ops/logs.py at "
        f"{args.baseline}, loaded beside this checkout's (*after*); the JSON line goes through each one's "
        "`json_handler` (google-cloud-logging 3.17.0's StructuredLogHandler) to /dev/null. Before timing, "
        f"the JSON lines of both for {compared} requests (miss and hit with either trace header, untraced, 404) were "
        "compared parsed: the same fields and values (latency and the source line aside). CPU µs per "
        "request, best of the rounds (variants interleaved; all rounds listed).",
        "",
        "| variant | CPU µs/request (best) | vs no log | added, after / before | all rounds |",
        "|---|---|---|---|---|",
        *rows, "",
        *instruction_rows(counted),
        notes(best, counted, args.baseline), ""])
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
