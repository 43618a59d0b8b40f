"""HTTP serving benchmark: gunicorn + Flask over the Bigtable emulator, beside nginx.

    .venv/bin/python bench/bench_http.py [--tags 10000] [--duration 10] [--connections 64] [--no-write]

1. starts a Bigtable emulator on a free port, creates the table, writes ``--tags`` tags with 100
   top posts each (production-shaped ids and image URLs) and an hour count;
2. starts gunicorn with serving/gunicorn.conf.py on a free loopback port (default settings: page
   cache on), and a second one with the page cache off (``HASHTAGS_CACHE_TTL_SECONDS=0``: every
   request reads its row from Bigtable);
3. saves the hot tag's HTML and starts nginx (own config in a temp dir, loopback, free port) serving
   that saved copy at the same path;
4. runs ``wrk -t2 -c64 -d10s --latency`` against nginx (the ceiling), the hot tag (cached), and
   10,000 distinct tags (bench/cycle_tags.lua) on the no-cache server;
5. prints the figures and writes them into the "## HTTP serving" section of docs/BENCHMARKS.md.

Every process it starts is stopped by its own PID. Needs: the Bigtable emulator (Google Cloud CLI),
/usr/bin/wrk and /usr/sbin/nginx (Debian: wrk, nginx-light).
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
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def start_gunicorn(port: int, env_extra: dict, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), GUNICORN_BIND=f"127.0.0.1:{port}",
               HASHTAGS_PROJECT=PROJECT, HASHTAGS_BIGTABLE_INSTANCE=INSTANCE, HASHTAGS_TABLE=TABLE,
               PYTHONWARNINGS="ignore", **env_extra)
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "serving" / "gunicorn.conf.py"),
                             "serving.wsgi:app"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc


def stop(proc: subprocess.Popen | None, sig=signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
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


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by one process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live children (gunicorn master + workers; workers are not
    recycled during a 10 s run: max_requests is 100,000 ± 10,000)."""
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
            cpu_of: dict[str, int] | None = None) -> dict:
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
        "errors": 0,
    }
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["errors"] = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    res["cpu_us"] = {name: (tree_cpu(pid) - before[name]) / max(res["requests"], 1) * 1e6
                     for name, pid in cpu_of.items()}
    print(out, res["cpu_us"], flush=True)
    return res


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


def versions() -> str:
    wrk_v = subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout.split("\n")[0].split(" [")[0]
    ngx = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "")
    import flask
    import gunicorn

    return f"{wrk_v}; {ngx}; gunicorn {gunicorn.__version__}; Flask {flask.__version__}"


def write_section(text: str) -> None:
    """Replace (or append) only the "## HTTP serving" section of docs/BENCHMARKS.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    old = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    body = text.rstrip("\n") + "\n\n"
    new = pattern.sub(lambda _: body, old, count=1) if pattern.search(old) else old.rstrip("\n") + "\n\n" + body
    DOC.write_text(new.rstrip("\n") + "\n")


def report(r: dict, args: argparse.Namespace, html: bytes, gz: bytes, load: tuple, gconf: str,
           load_after: tuple = (0.0, 0.0, 0.0)) -> str:
    ngx, hot, unc, hot_gz = r["nginx"], r["hot"], r["uncached"], r.get("hot_gzip")
    ratio = hot["rps"] / ngx["rps"]
    targets = [
        ("hot (cached) ≥ 0.15 × nginx", ratio >= 0.15, f"{ratio:.2f} ×"),
        ("uncached ≥ 1,000 req/s", unc["rps"] >= 1000, f"{unc['rps']:,.0f} req/s"),
        ("p99 ≤ 20 ms (hot)", hot["p99"] <= 20, f"{hot['p99']:.2f} ms"),
        ("p99 ≤ 20 ms (uncached)", unc["p99"] <= 20, f"{unc['p99']:.2f} ms"),
        ("HTML for 100 posts ≤ 25 KB", len(html) <= 25_000, f"{len(html):,} B"),
        ("gzipped ≤ 6 KB", len(gz) <= 6_000, f"{len(gz):,} B"),
    ]

    def cpu(x, who):
        v = x.get("cpu_us", {}).get(who)
        return "–" if v is None else f"{v:,.0f}"

    def row(name, x):
        return (f"| {name} | {x['rps']:,.0f} | {x['p50']:.2f} | {x['p99']:.2f} | {x['rps'] / ngx['rps']:.2f} × "
                f"| {x['requests']:,} | {x['errors']} | {cpu(x, 'gunicorn')} | {cpu(x, 'emulator')} |")

    lines = [
        SECTION, "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/bench_http.py` "
        f"(reproduce: `.venv/bin/python bench/bench_http.py`).", "",
        f"- Machine: {machine()}; load average before the runs {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, "
        f"after {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} (the benchmark's own processes "
        "count in it; the machine is shared: other work running at the same time lowers every figure).",
        f"- Tools: {versions()}.",
        f"- Data: Bigtable emulator with {args.tags:,} tags × 100 top posts (production-shaped ids and "
        "image URLs) + an hour count each.",
        f"- Server: `gunicorn -c serving/gunicorn.conf.py serving.wsgi:app` ({gconf}); client, server, "
        "emulator and nginx all on the same 2 cores.",
        f"- Load: `{hot['cmd']}` each; nginx serves a saved copy of the same page as a static file in "
        "the same run (the ceiling).", "",
        "| scenario | req/s | p50 ms | p99 ms | vs nginx | requests | errors | server CPU µs/req | emulator CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        row("nginx, static copy of the page", ngx),
        row(f"gunicorn, hot tag (page cache hit) `/tags/{HOT}`", hot),
    ]
    if hot_gz:
        lines.append(row("gunicorn, hot tag, `Accept-Encoding: gzip`", hot_gz))
    lines += [
        row(f"gunicorn, {args.tags:,} distinct tags, cache off (1 Bigtable read each)", unc),
        "",
        f"Uncached command: `{unc['cmd']}` against a server started with `HASHTAGS_CACHE_TTL_SECONDS=0`.",
        "",
        "CPU µs/req: user + system CPU time of the gunicorn master and workers (and of the emulator) "
        "during the run, from /proc, divided by the requests wrk completed. On GCP, Bigtable's side "
        "runs elsewhere: the server column is what a web instance pays per request.",
        "",
        f"Page size for 100 posts: {len(html):,} bytes of HTML, {len(gz):,} bytes gzipped (level 6).",
        "",
        "| target | met | measured |", "|---|---|---|",
        *[f"| {name} | {'yes' if ok else '**no**'} | {val} |" for name, ok, val in targets],
    ]
    if args.notes and Path(args.notes).exists():
        lines += ["", Path(args.notes).read_text().strip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tags", type=int, default=10_000)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-doc", action="store_true", help="print only; do not touch docs/BENCHMARKS.md")
    p.add_argument("--notes", default=str(ROOT / "bench" / "bench_http_notes.md"),
                   help="a Markdown file appended to the section (analysis of the runs)")
    args = p.parse_args(argv)

    for tool in (WRK, NGINX):
        if not Path(tool).exists():
            sys.exit(f"{tool} missing (apt: wrk nginx-light)")
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    em = gu_hot = gu_cold = None
    nginx_pid = None
    results: dict = {}
    try:
        em = emulators.start_bigtable(log_dir=work)
        os.environ["BIGTABLE_EMULATOR_HOST"] = em.address
        create_table(PROJECT, INSTANCE, TABLE)
        store = BigtableStore(PROJECT, INSTANCE, TABLE)
        populate(store, args.tags)
        store.close()

        hot_port, cold_port, ngx_port = (emulators.free_port() for _ in range(3))
        gu_hot = start_gunicorn(hot_port, {}, work / "gunicorn-hot.log")
        gu_cold = start_gunicorn(cold_port, {"HASHTAGS_CACHE_TTL_SECONDS": "0"}, work / "gunicorn-cold.log")
        with urllib.request.urlopen(f"http://127.0.0.1:{hot_port}/tags/{HOT}") as r:
            html = r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{hot_port}/readyz") as r:
            assert r.status == 200
        gz = gzip.compress(html, 6)
        assert html.count(b"<img ") == 100, "the hot page should show 100 posts"
        nginx_pid = start_nginx(work / "nginx", ngx_port, html)
        with urllib.request.urlopen(f"http://127.0.0.1:{ngx_port}/tags/{HOT}") as r:
            assert r.read() == html

        import multiprocessing

        gconf = (f"gthread, {os.environ.get('WEB_CONCURRENCY', multiprocessing.cpu_count())} workers × "
                 f"{os.environ.get('GUNICORN_THREADS', 8)} threads")
        load = os.getloadavg()
        results["nginx"] = run_wrk(f"http://127.0.0.1:{ngx_port}/tags/{HOT}", args)
        results["hot"] = run_wrk(f"http://127.0.0.1:{hot_port}/tags/{HOT}", args,
                                 cpu_of={"gunicorn": gu_hot.pid})
        results["uncached"] = run_wrk(f"http://127.0.0.1:{cold_port}", args,
                                      script=[str(LUA), str(args.tags), "tag"],
                                      cpu_of={"gunicorn": gu_cold.pid, "emulator": em.proc.pid})
        load_after = os.getloadavg()
        print(json.dumps(results, indent=2))
        text = report(results, args, html, gz, load, gconf, load_after)
        print(text)
        if not args.no_doc:
            write_section(text)
            print(f"wrote the '{SECTION}' section of {DOC.relative_to(ROOT)}")
    finally:
        stop_pid(nginx_pid)
        stop(gu_hot)
        stop(gu_cold)
        if em:
            em.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
