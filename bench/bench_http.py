"""HTTP serving benchmark: the web service over the Bigtable emulator, beside nginx, for one or more
checkouts (variants) in the same run.

    .venv/bin/python bench/bench_http.py [--variant LABEL=DIR]... [--tags 10000] [--duration 10]
        [--connections 64] [--rounds 1] [--slow-clients 200] [--section "## HTTP serving"] [--no-doc]

A variant is a source tree: ``DIR`` (``.`` = this checkout) or ``git:REV`` (a fresh ``git archive``
of REV in a temp dir), optionally followed by ``,VAR=VALUE`` settings for its servers (e.g.
``t4=.,WEB_THREADS=4`` to compare server settings on the same tree). Each is served the way its own tree says: ``python -m serving.server``
(granian, serving/server.py) when the tree has it, else gunicorn with the tree's
serving/gunicorn.conf.py (the server before issue 12), so an old revision is measured as it ran.
``,server=gunicorn:REV`` serves the tree with gunicorn and REV's serving/gunicorn.conf.py instead:
the issue-12 baseline server (``gunicorn:b6c28cb``) on a newer app, so that both sides of a
comparison render the same page (the report says whether the page bytes are equal).
Without ``--variant``: this checkout alone.

The fair uncached baseline (issue 21). Issue 12 and 21 ask for "uncached >= 1.3 x the gunicorn
baseline". ``b6c28cb`` run as it was renders page v1 (no sparklines, history, related tags, link
previews, trending mark): about half of an uncached request's CPU is rendering, so against it a
server change is measured together with a lighter page. The baseline used since is the issue-12
gunicorn configuration (``server=gunicorn:b6c28cb``: 2 workers x 8 gthread threads, keepalive 5 s,
its GC settings) serving the app as it was when this was decided (``git:d874a08``: page v2 + the
trending mark, issue 21's read path) with the production environment (JSON request log): the same
page bytes, so the ratio is what the production server and the miss path changed since, not the
page. docs/BENCHMARKS.md "Web tier, long tail (issue 21)" has the figures.

1. starts a Bigtable emulator on a free port, creates the table, writes ``--tags`` tags with 100 top
   posts each (production-shaped ids and image URLs) and an hour count;
2. per variant, two servers on free loopback ports: default settings (page cache on) and cache off
   (``HASHTAGS_CACHE_TTL_SECONDS=0``: every request reads its row);
3. saves the hot tag's HTML (first variant) and starts nginx serving that copy at the same path;
4. per round, scenario by scenario, every variant in turn (so drifting load hits all alike):
   ``wrk -t2 -c64 -d10s --latency`` against nginx (the ceiling), the hot tag (cached), ``--tags``
   distinct tags (bench/cycle_tags.lua, one store read each) and as many distinct unknown tags (one
   read each, 404) on the cache-off server; then ``--slow-clients`` connections that send a request
   header at 1 byte/s (half) or nothing (half), and 10 normal requests (2 s timeout each) beside them;
5. prints the figures and, unless ``--no-doc``, writes them into ``--section`` of docs/BENCHMARKS.md.

Every process it starts is stopped by its own PID. Needs: the Bigtable emulator (Google Cloud CLI),
/usr/bin/wrk and /usr/sbin/nginx (Debian: wrk, nginx-light); gunicorn only for a variant without
serving/server.py.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import emulators  # noqa: E402
from devstack.processes import wait_http  # noqa: E402
from hashtag_store import BigtableStore, create_table, mutations  # noqa: E402
from hashtags.layout import TopPost  # noqa: E402
from hashtags.messages import TopPostsUpdate  # noqa: E402

PROJECT, INSTANCE, TABLE = "bench-hashtags", "bench", "hashtags"
HOT = "tag00000"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LUA = ROOT / "bench" / "cycle_tags.lua"
DOC = ROOT / "docs" / "BENCHMARKS.md"
SECTION = "## HTTP serving"
SCENARIOS = ("hot", "uncached", "unknown")


def tag_name(i: int) -> str:
    return f"tag{i:05d}"


def populate(store: BigtableStore, n_tags: int, seed: int = 42) -> None:
    rng = random.Random(seed)
    computed = dt.datetime(2026, 11, 23, 10, tzinfo=dt.timezone.utc)
    hour = dt.datetime(2026, 11, 23, 9, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(n_tags):
        key = tag_name(i)
        posts = tuple(TopPost(str(rng.randrange(10**18, 10**19)),
                              f"https://img.example-cdn.com/p/{rng.getrandbits(128):032x}.jpg") for _ in range(100))
        rows.append(mutations.top_posts_row(TopPostsUpdate(key, computed, posts)))
        rows.append(mutations.hour_count_row(key, hour, rng.randrange(1, 5_000_000), key.capitalize(),
                                            generation=0))
    t0 = time.monotonic()
    store.mutate(rows, batch_size=500)
    print(f"wrote {n_tags} tags ({len(rows)} row mutations) in {time.monotonic() - t0:.1f}s", flush=True)


# --- variants and their servers ------------------------------------------------------------------

@dataclass(slots=True)
class Variant:
    label: str
    tree: Path
    source: str  # as given: a directory or git:REV, then any ,VAR=VALUE
    env: dict[str, str] = field(default_factory=dict)
    gunicorn_conf: Path | None = None  # server=gunicorn:REV: that revision's config, on this tree

    @property
    def server_kind(self) -> str:
        if self.gunicorn_conf is not None:
            return "gunicorn"
        return "granian" if (self.tree / "serving" / "server.py").exists() else "gunicorn"

    @property
    def conf(self) -> str:
        return str(self.gunicorn_conf or "serving/gunicorn.conf.py")

    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        """How this tree starts its production server on ``port`` (argv, extra environment)."""
        if self.server_kind == "granian":
            return ([sys.executable, "-m", "serving.server", "--host", "127.0.0.1", "--port", str(port)], {})
        return ([sys.executable, "-m", "gunicorn", "-c", self.conf, "serving.wsgi:app"],
                {"GUNICORN_BIND": f"127.0.0.1:{port}"})

    def describe(self) -> str:
        if self.server_kind == "granian":
            code = ("import serving.server as s; c = s.server_config(); print(f'granian WSGI, {c.workers} workers x "
                    "{c.threads} threads, backpressure {c.backpressure}/worker, header read timeout "
                    "{c.header_read_timeout_ms / 1000:g} s, HTTP/1 buffer {c.http1_buffer // 1024} KiB')")
        else:
            code = (f"import runpy; c = runpy.run_path({self.conf!r}); "
                    "print(f\"gunicorn {c['worker_class']}, {c['workers']} workers x {c['threads']} threads, "
                    "keepalive {c['keepalive']} s\")")
        out = subprocess.run([sys.executable, "-c", code], cwd=self.tree,
                             env=dict(os.environ, PYTHONPATH=str(self.tree), **self.env), capture_output=True, text=True)
        text = out.stdout.strip() or self.server_kind
        if self.gunicorn_conf is not None:
            text += f" (serving/gunicorn.conf.py of {self.gunicorn_conf.name.split('-', 1)[1].removesuffix('.conf.py')})"
        return text


def parse_variant(spec: str, work: Path) -> Variant:
    label, sep, rest = spec.partition("=")
    source, *settings = rest.split(",")
    if not sep or not label or not source or not all("=" in s for s in settings):
        raise SystemExit(f"--variant wants LABEL=DIR or LABEL=git:REV (then ,VAR=VALUE...), got {spec!r}")
    env = dict(s.split("=", 1) for s in settings)
    gunicorn_conf = None
    if "server" in env:
        server = env.pop("server")
        if not server.startswith("gunicorn:"):
            raise SystemExit(f"--variant {label}: server=gunicorn:REV is the one server setting, got {server!r}")
        rev = server[len("gunicorn:"):]
        gunicorn_conf = work / f"gunicorn-{rev}.conf.py"
        gunicorn_conf.write_bytes(subprocess.run(["git", "show", f"{rev}:serving/gunicorn.conf.py"], cwd=ROOT,
                                                 check=True, capture_output=True).stdout)
    if source.startswith("git:"):
        tree = work / f"tree-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}"
        tree.mkdir(parents=True)
        subprocess.run(f"git archive {source[4:]} | tar -x -C {tree}", shell=True, cwd=ROOT, check=True)
    else:
        tree = Path(source).resolve()
        if not (tree / "serving").is_dir():
            raise SystemExit(f"--variant {label}: {tree} has no serving/ package")
    return Variant(label, tree, rest, env, gunicorn_conf)


def start_server(variant: Variant, port: int, env_extra: dict, log: Path) -> subprocess.Popen:
    argv, server_env = variant.command(port)
    env = dict(os.environ, PYTHONPATH=str(variant.tree), HASHTAGS_PROJECT=PROJECT, HASHTAGS_BIGTABLE_INSTANCE=INSTANCE,
               HASHTAGS_TABLE=TABLE, PYTHONWARNINGS="ignore", **server_env, **variant.env, **env_extra)
    out = open(log, "wb")
    proc = subprocess.Popen(argv, cwd=variant.tree, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/healthz", 60)
    return proc


def stop(proc: subprocess.Popen | None, sig=signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def start_nginx(workdir: Path, port: int, html: bytes) -> int:
    """nginx serving ``html`` at /tags/<HOT>, as a static file with the same content type."""
    site = workdir / "site"
    (site / "tags").mkdir(parents=True)
    (site / "tags" / HOT).write_bytes(html)
    for p in (workdir.parent, workdir, site, site / "tags"):
        p.chmod(0o755)
    (site / "tags" / HOT).chmod(0o644)
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes auto;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
daemon on;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {workdir}/tmp;
    proxy_temp_path {workdir}/tmp;
    fastcgi_temp_path {workdir}/tmp;
    uwsgi_temp_path {workdir}/tmp;
    scgi_temp_path {workdir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {site};
        location /tags/ {{ default_type "text/html; charset=utf-8"; }}
    }}
}}
""")
    subprocess.run([NGINX, "-p", str(workdir), "-c", str(conf)], check=True)
    deadline = time.monotonic() + 10
    while not (workdir / "nginx.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int((workdir / "nginx.pid").read_text())
    wait_http(f"http://127.0.0.1:{port}/tags/{HOT}")
    return pid


def stop_pid(pid: int | None) -> None:
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGQUIT)  # nginx: graceful shutdown of master + workers
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


# --- measuring -----------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by one process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live children (the server's main process + its workers; no
    worker is recycled during a run: granian recycles none, gunicorn's max_requests is 100,000)."""
    total = _proc_cpu(root)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == root:
                total += _proc_cpu(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def run_wrk(url: str, args: argparse.Namespace, script: list[str] | None = None,
            cpu_of: dict[str, int] | None = None, expect_404: bool = False) -> dict:
    """One wrk run; ``cpu_of`` names processes (trees) whose CPU time per request to report."""
    cpu_of = cpu_of or {}
    before = {name: tree_cpu(pid) for name, pid in cpu_of.items()}
    cmd = [WRK, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    if script:
        cmd += ["-s", script[0], url, "--", *script[1:]]
    else:
        cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res = {
        "cmd": " ".join(Path(c).name if c == WRK else (os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c)
                        for c in cmd),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
    }
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = int(bad.group(1)) if bad else 0
    # Unknown tags answer 404 by design: there the error count is the requests that did NOT get one.
    res["errors"] = (res["requests"] - non2xx if expect_404 else non2xx) + (sum(map(int, sock.groups())) if sock else 0)
    res["cpu_us"] = {name: (tree_cpu(pid) - before[name]) / max(res["requests"], 1) * 1e6
                     for name, pid in cpu_of.items()}
    print(out, res["cpu_us"], flush=True)
    return res


def slow_clients(port: int, n: int, normal: int = 10, timeout: float = 2.0) -> dict:
    """``n`` connections held open (half send a request header at 1 byte/s, half send nothing), then
    ``normal`` ordinary requests one after another, each given ``timeout`` seconds."""
    stop_evt = threading.Event()
    socks = []
    for i in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    trickle = b"GET /tags/" + HOT.encode() + b" HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"a" * 1000

    def drip():
        for b in trickle:
            for s in socks[::2]:
                try:
                    s.send(bytes([b]))
                except OSError:
                    pass
            if stop_evt.wait(1.0):
                return

    t = threading.Thread(target=drip, daemon=True)
    t.start()
    time.sleep(1.0)
    answered, latencies = 0, []
    for _ in range(normal):
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/tags/{HOT}", timeout=timeout) as r:
                r.read()
                answered += r.status == 200
                latencies.append((time.monotonic() - t0) * 1000)
        except OSError:
            pass
    stop_evt.set()
    t.join(2)
    for s in socks:
        s.close()
    res = {"held": len(socks), "answered": answered, "normal": normal,
           "p50": statistics.median(latencies) if latencies else None}
    print(f"slow clients on :{port}: {res}", flush=True)
    return res


# --- report --------------------------------------------------------------------------------------

def machine() -> str:
    cpu = "unknown CPU"
    try:
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{os.cpu_count()} vCPU ({cpu}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def versions(variants: list[Variant]) -> str:
    wrk_v = subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout.split("\n")[0].split(" [")[0]
    ngx = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "")
    import importlib.metadata as md

    servers = sorted({v.server_kind for v in variants})
    return "; ".join([wrk_v, ngx, *(f"{s} {md.version(s)}" for s in servers), f"Flask {md.version('flask')}"])


def write_section(text: str, section: str) -> None:
    """Replace (or append) only ``section`` of docs/BENCHMARKS.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    old = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.M | re.S)
    body = text.rstrip("\n") + "\n\n"
    new = pattern.sub(lambda _: body, old, count=1) if pattern.search(old) else old.rstrip("\n") + "\n\n" + body
    DOC.write_text(new.rstrip("\n") + "\n")


@dataclass(slots=True)
class Run:
    """Everything one invocation measured: ``results[round][scenario][label]``."""
    variants: list[Variant]
    descriptions: dict[str, str]
    results: list[dict] = field(default_factory=list)
    nginx: list[dict] = field(default_factory=list)
    slow: dict[str, dict] = field(default_factory=dict)
    pages: dict[str, bytes] = field(default_factory=dict)  # an uncached page as each variant renders it


def report(run: Run, args: argparse.Namespace, html: bytes, gz: bytes, load: tuple, load_after: tuple) -> str:
    base = run.variants[0].label

    def cpu(x, who):
        v = x.get("cpu_us", {}).get(who)
        return "–" if v is None else f"{v:,.0f}"

    names = {"hot": f"hot tag (page cache hit) `/tags/{HOT}`",
             "uncached": f"{args.tags:,} distinct tags, cache off (1 store read each)",
             "unknown": f"{args.tags:,} distinct unknown tags, cache off (1 store read each, 404)"}
    lines = [
        args.section, "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/bench_http.py` "
        f"(reproduce: `.venv/bin/python bench/bench_http.py "
        + " ".join(f"--variant {v.label}={v.source}" for v in run.variants)
        + f"{' --rounds ' + str(args.rounds) if args.rounds > 1 else ''}"
        + f"{' --duration ' + str(args.duration) if args.duration != 10 else ''}"
        + f" --section {json.dumps(args.section)}"
        + (f" --notes {os.path.relpath(args.notes, ROOT)}" if args.notes != str(ROOT / 'bench' / 'bench_http_notes.md') else "")
        + "`).", "",
        f"- Machine: {machine()}; load average before the runs {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, "
        f"after {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} (the benchmark's own processes "
        "count in it; the machine is shared: other work running at the same time lowers every figure).",
        f"- Tools: {versions(run.variants)}.",
        f"- Data: Bigtable emulator with {args.tags:,} tags × 100 top posts (production-shaped ids and "
        "image URLs) + an hour count each.",
        *[f"- Variant **{v.label}** (`{v.source}`): {run.descriptions[v.label]}." for v in run.variants],
        f"- The uncached page each variant renders (`/tags/{tag_name(1)}`): "
        + "; ".join(f"{v.label} {len(run.pages[v.label]):,} bytes"
                    + ("" if v.label == base else " (same bytes as " + base + ")" if run.pages[v.label] == run.pages[base]
                       else " (**differs** from " + base + ")") for v in run.variants) + ".",
        "- Client, servers, emulator and nginx all on the same machine; nginx serves a saved copy of the "
        f"same page as a static file in the same run (the ceiling). Load: `{run.nginx[0]['cmd']}` each.",
        "",
        f"| round | scenario | variant | req/s | p50 ms | p99 ms | vs nginx | vs {base} | requests | errors "
        "| server CPU µs/req | emulator CPU µs/req |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, (rnd, ngx) in enumerate(zip(run.results, run.nginx), 1):
        lines.append(f"| {i} | nginx, static copy | – | {ngx['rps']:,.0f} | {ngx['p50']:.2f} | {ngx['p99']:.2f} "
                     f"| 1.00 × | – | {ngx['requests']:,} | {ngx['errors']} | – | – |")
        for sc in SCENARIOS:
            for v in run.variants:
                x = rnd[sc][v.label]
                ref = rnd[sc][base]["rps"]
                lines.append(f"| {i} | {names[sc]} | {v.label} | {x['rps']:,.0f} | {x['p50']:.2f} | {x['p99']:.2f} "
                             f"| {x['rps'] / ngx['rps']:.2f} × | {x['rps'] / ref:.2f} × | {x['requests']:,} "
                             f"| {x['errors']} | {cpu(x, 'server')} | {cpu(x, 'emulator')} |")
    lines += [
        "",
        f"Uncached / unknown: `{run.results[0]['uncached'][base]['cmd']}` (`tag` / `nope` prefix) against "
        "a server started with `HASHTAGS_CACHE_TTL_SECONDS=0`. errors = socket errors + responses other "
        "than expected (2xx/3xx; 404 for unknown tags).",
        "",
        "CPU µs/req: user + system CPU time of the server's processes (main + workers) and of the "
        "emulator during the run, from /proc, divided by the requests wrk completed. On GCP, Bigtable's "
        "side runs elsewhere: the server column is what a web instance pays per request.",
        "",
    ]
    if run.slow:
        lines += [f"Slow clients: {args.slow_clients} connections held open (half sending a request header "
                  "at 1 byte/s, half sending nothing), then 10 normal requests for the hot page, one after "
                  "another, 2 s timeout each:", "",
                  "| variant | connections held | normal requests answered | their p50 ms |", "|---|---:|---:|---:|"]
        for v in run.variants:
            s = run.slow[v.label]
            p50 = "–" if s["p50"] is None else f"{s['p50']:.1f}"
            lines.append(f"| {v.label} | {s['held']} | {s['answered']}/{s['normal']} | {p50} |")
        lines.append("")
    lines += [f"Page size for 100 posts: {len(html):,} bytes of HTML, {len(gz):,} bytes gzipped (level 6).", ""]
    last = run.variants[-1].label
    hot = [r["hot"][last]["rps"] / n["rps"] for r, n in zip(run.results, run.nginx)]
    lines += ["| target (issue 12, variant " + last + ") | met | measured per round |", "|---|---|---|",
              f"| hot ≥ 0.5 × nginx | {'yes' if min(hot) >= 0.5 else '**no**'} | "
              + ", ".join(f"{h:.2f} ×" for h in hot) + " |"]
    if len(run.variants) > 1:
        for sc in ("uncached", "unknown"):
            ratios = [r[sc][last]["rps"] / r[sc][base]["rps"] for r in run.results]
            lines.append(f"| {sc} ≥ 1.3 × {base} | {'yes' if min(ratios) >= 1.3 else '**no**'} | "
                         + ", ".join(f"{x:.2f} ×" for x in ratios) + " |")
    if args.notes and Path(args.notes).exists():
        lines += ["", Path(args.notes).read_text().strip()]
    return "\n".join(lines) + "\n"


# --- main ----------------------------------------------------------------------------------------

def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r:
        return r.read()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=DIR",
                   help="a source tree to serve (DIR or git:REV); repeatable; the first is the baseline")
    p.add_argument("--tags", type=int, default=10_000)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="repeat every scenario this many times")
    p.add_argument("--slow-clients", type=int, default=200, help="0 skips the slow-client check")
    p.add_argument("--section", default=SECTION, help="the docs/BENCHMARKS.md section to (re)write")
    p.add_argument("--no-doc", action="store_true", help="print only; do not touch docs/BENCHMARKS.md")
    p.add_argument("--notes", default=str(ROOT / "bench" / "bench_http_notes.md"),
                   help="a Markdown file appended to the section (analysis of the runs)")
    args = p.parse_args(argv)

    for tool in (WRK, NGINX):
        if not Path(tool).exists():
            sys.exit(f"{tool} missing (apt: wrk nginx-light)")
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    em = None
    nginx_pid = None
    servers: dict[tuple[str, str], subprocess.Popen] = {}
    try:
        variants = [parse_variant(s, work) for s in (args.variant or [f"this checkout={ROOT}"])]
        if len({v.label for v in variants}) != len(variants):
            sys.exit("--variant labels must differ")
        em = emulators.start_bigtable(log_dir=work)
        os.environ["BIGTABLE_EMULATOR_HOST"] = em.address
        create_table(PROJECT, INSTANCE, TABLE)
        store = BigtableStore(PROJECT, INSTANCE, TABLE)
        populate(store, args.tags)
        store.close()

        ports: dict[tuple[str, str], int] = {}
        for v in variants:
            for mode, extra in (("hot", {}), ("cold", {"HASHTAGS_CACHE_TTL_SECONDS": "0"})):
                ports[v.label, mode] = emulators.free_port()
                servers[v.label, mode] = start_server(v, ports[v.label, mode], extra, work / f"{v.label}-{mode}.log")
        html = fetch(ports[variants[0].label, "hot"], f"/tags/{HOT}")
        assert html.count(b"<img ") == 100, "the hot page should show 100 posts"
        for v in variants:
            assert fetch(ports[v.label, "hot"], "/readyz") is not None
        gz = gzip.compress(html, 6)
        ngx_port = emulators.free_port()
        nginx_pid = start_nginx(work / "nginx", ngx_port, html)
        assert fetch(ngx_port, f"/tags/{HOT}") == html

        run = Run(variants, {v.label: v.describe() for v in variants},
                  pages={v.label: fetch(ports[v.label, "cold"], f"/tags/{tag_name(1)}") for v in variants})
        load = os.getloadavg()
        for _ in range(args.rounds):
            run.nginx.append(run_wrk(f"http://127.0.0.1:{ngx_port}/tags/{HOT}", args))
            rnd: dict = {sc: {} for sc in SCENARIOS}
            for v in variants:
                rnd["hot"][v.label] = run_wrk(f"http://127.0.0.1:{ports[v.label, 'hot']}/tags/{HOT}", args,
                                              cpu_of={"server": servers[v.label, "hot"].pid})
            for sc, prefix in (("uncached", "tag"), ("unknown", "nope")):
                for v in variants:
                    rnd[sc][v.label] = run_wrk(f"http://127.0.0.1:{ports[v.label, 'cold']}", args,
                                               script=[str(LUA), str(args.tags), prefix],
                                               cpu_of={"server": servers[v.label, "cold"].pid, "emulator": em.proc.pid},
                                               expect_404=sc == "unknown")
            run.results.append(rnd)
        if args.slow_clients:
            for v in variants:
                run.slow[v.label] = slow_clients(ports[v.label, "hot"], args.slow_clients)
        load_after = os.getloadavg()
        print(json.dumps({"nginx": run.nginx, "results": run.results, "slow": run.slow}, indent=1))
        text = report(run, args, html, gz, load, load_after)
        print(text)
        if not args.no_doc:
            write_section(text, args.section)
            print(f"wrote the '{args.section}' section of {DOC.relative_to(ROOT)}")
    finally:
        stop_pid(nginx_pid)
        for proc in servers.values():
            stop(proc)
        if em:
            em.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
