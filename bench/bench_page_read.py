"""In-process cost of an uncached page v2 request over a realistic row, two or more checkouts in one
run (issue 11's CPU pass).

    .venv/bin/python bench/bench_page_read.py before=/tmp/h-before after=. [--rounds 5] [--rows 1000]

Each variant runs in its own interpreter with its checkout first on ``sys.path`` (the same venv).
The rows are what ``_RowReader`` hands ``document_from_cells`` (``(family, qualifier, ts_micros,
value)`` in Bigtable's order): 7 days of hour cells in 2 count generations (336 cells, up to the
current hour), a base at the last midnight, 44 ``days`` cells (22 days of ``p.`` and ``a.``), 10
related tags, a flags cell (cleared), a display cell, 100 top posts. Figures, process CPU per call,
each the best of ``--rounds`` passes over ``--rows`` different rows:

- ``read_us``: ``hashtag_store.bigtable.document_from_cells`` (the page read minus the gRPC call);
- ``history_us``: ``hashtags.history.usage_history`` on that document;
- ``html_us`` / ``json_us``: ``GET /tags/<key>`` / ``GET /api/tags/<key>`` through ``create_app``'s
  WSGI app with the page cache off, over a store whose ``read_page`` is ``document_from_cells`` on
  the row (so: page read + render + hash, no network).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, random, struct, sys, time, datetime as dt
root, n_rows, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, root)
from hashtags import layout
from hashtags.history import usage_history
from hashtags.settings import Settings
from hashtag_store.bigtable import document_from_cells
from serving import create_app

UTC = dt.timezone.utc
now = dt.datetime.now(UTC)
hour = layout.hour_start(now)
midnight = layout.midnight_utc(now.date())
rng = random.Random(42)
q = struct.Struct(">q").pack
us = lambda t: layout.to_millis(t) * 1000

def row(i):
    key = f"tag{i:05d}"
    cells = [("counts", b"base", us(midnight), q(rng.randrange(1, 5_000_000)))]
    for gen in (b"h.3", b"h.4"):  # a relaunch 3 days ago: generation 3 before, 4 after, both on the shared hour
        for h in range(7 * 24):
            start = hour - dt.timedelta(hours=h)
            if (gen == b"h.4") == (h <= 72):
                cells.append(("counts", gen, us(start), q(rng.randrange(0, 500))))
            elif h in (72, 73):
                cells.append(("counts", gen, us(start), q(rng.randrange(0, 50))))
    for back in range(1, 23):
        day = (now - dt.timedelta(days=back)).strftime("%Y%m%d").encode()
        cells.append(("days", b"a." + day, us(midnight), q(rng.randrange(0, 900))))
        cells.append(("days", b"p." + day, us(midnight), q(rng.randrange(0, 5000))))
    related = [layout.RelatedTag(f"tag{(i + k) % n_rows:05d}", 1000 - k) for k in range(1, 11)]
    cells.append(("meta", b"display", us(hour), key.capitalize().encode()))
    cells.append(("meta", b"flags", us(midnight), layout.encode_flags(layout.Flags(reason="cleared", by="ops", changed_at=midnight))))
    cells.append(("meta", b"related", us(midnight), layout.encode_related(related)))
    posts = [layout.TopPost(str(rng.randrange(10**18, 10**19)), f"https://img.example-cdn.com/p/{rng.getrandbits(128):032x}.jpg")
             for _ in range(100)]
    cells.append(("top", b"posts", us(hour), layout.encode_top_posts(posts)))
    cells.sort(key=lambda c: (c[0], c[1], -c[2]))  # Bigtable's order: family, qualifier, newest first
    return key, cells

rows = dict(row(i) for i in range(n_rows))
assert sum(1 for c in rows["tag00000"] if c[0] == "counts" and c[1] != b"base") == 7 * 24 + 2

class Store:
    def read_page(self, key):
        cells = rows.get(key)
        return document_from_cells(key, cells) if cells is not None else None
    def ping(self): pass

def best(fn, items):
    out = []
    for _ in range(rounds):
        t = time.process_time()
        for x in items:
            fn(x)
        out.append((time.process_time() - t) / len(items) * 1e6)
    return min(out)

env0 = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "QUERY_STRING": "", "SERVER_NAME": "bench", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False, "HTTP_HOST": "bench"}
app = create_app(Settings(cache_ttl_seconds=0), Store())
def get(path):
    e = dict(env0); e["PATH_INFO"] = path
    status = []
    body = b"".join(app(e, lambda s, h, x=None: status.append(s)))
    assert status == ["200 OK"], (path, status)
    return body

keys = list(rows)
docs = [document_from_cells(k, rows[k]) for k in keys]
assert len(docs[0].hours) == 7 * 24 and len(docs[0].days) == 22, (len(docs[0].hours), len(docs[0].days))
print(json.dumps({
    "read_us": best(lambda k: document_from_cells(k, rows[k]), keys),
    "history_us": best(lambda d: usage_history(d, now), docs),
    "html_us": best(lambda k: get("/tags/" + k), keys),
    "json_us": best(lambda k: get("/api/tags/" + k), keys),
    "html_bytes": len(get("/tags/tag00000")),
}))
'''

FIGURES = ("read_us", "history_us", "html_us", "json_us")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="+", help="label=DIR")
    p.add_argument("--rounds", type=int, default=5, help="passes per figure in each interpreter (best kept)")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3, help="interpreters per variant, alternating")
    args = p.parse_args(argv)
    variants = [(label, str(Path(d).resolve())) for label, d in (v.split("=", 1) for v in args.variants)]
    print(f"load average before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; Python {platform.python_version()}", flush=True)
    results: dict[str, list[dict]] = {v[0]: [] for v in variants}
    for r in range(args.runs):
        for label, root in (variants if r % 2 == 0 else variants[::-1]):
            proc = subprocess.run([sys.executable, "-c", CHILD, root, str(args.rows), str(args.rounds)],
                                  capture_output=True, text=True, cwd=root)
            if proc.returncode:
                sys.exit(f"{label} failed:\n{proc.stderr}")
            out = proc.stdout
            results[label].append(json.loads(out.strip().splitlines()[-1]))
            print(f"run {r + 1} {label}: " + ", ".join(f"{k} {v:,.0f}" for k, v in results[label][-1].items()),
                  flush=True)
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = variants[0][0]
    best = {lbl: {k: min(x[k] for x in rs) for k in FIGURES} for lbl, rs in results.items()}
    print("\n| variant | " + " | ".join(f"{k} (best)" for k in FIGURES) + " | HTML bytes |\n|---|"
          + "---:|" * (len(FIGURES) + 1))
    for lbl, m in best.items():
        cells = [f"{m[k]:,.0f}" + ("" if lbl == base else f" ({m[k] / best[base][k]:.2f} ×)") for k in FIGURES]
        print(f"| {lbl} | " + " | ".join(cells) + f" | {results[lbl][0]['html_bytes']:,} |")


if __name__ == "__main__":
    main()
