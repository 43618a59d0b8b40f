"""In-process cost of the serving path, two or more checkouts in one run (issue 12).

    .venv/bin/python bench/bench_serving_path.py before=/tmp/serving-before after=. [--rounds 5]
        [--requests 20000] [--without-speedups]

Each variant runs in its own interpreter with its checkout first on ``sys.path`` (the same venv),
builds ``create_app`` over an in-memory store of 10,000 production-shaped tags (100 top posts each)
and calls the WSGI app directly (no server, no network), so the figures are the app's own CPU per
request (``time.process_time``) for:

- hot: ``GET /tags/tag00000`` answered from the page cache;
- uncached: ``GET /tags/tagNNNNN`` cycling over the 10,000 tags with the cache off
  (``cache_ttl_seconds=0``): one store call + render + hash per request (the store call is an
  in-memory dict lookup here: a real Bigtable read adds its own cost on top, the same for all variants).

Variants alternate round by round (before, after, before, after, ...) so drift of the shared machine
hits each alike; the table gives the median of the rounds and each variant's ratio to the first.
``--without-speedups`` adds two variants of the LAST checkout, each without one speed-up it keeps:
tiles by ``views._escaped_tiles`` only (no plain-page path), and the tag routes as Flask views calling
the same ``views.answer`` (no WSGI router in front of Flask).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, random, sys, time, datetime as dt
root, requests, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, root)
from hashtags.layout import PageDocument, TopPost
from hashtags.settings import Settings
from serving import create_app

import serving.views as views
if mode == "escaped-tiles":  # without the plain-page tile speed-up
    views.tiles_html = views._escaped_tiles
rng = random.Random(42)
def doc(i):
    posts = tuple(TopPost(str(rng.randrange(10**18, 10**19)), f"https://img.example-cdn.com/p/{rng.getrandbits(128):032x}.jpg")
                  for _ in range(100))
    return PageDocument(f"tag{i:05d}", f"Tag{i:05d}", 1_000 + i, posts, updated_at=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
class Store:
    def __init__(self): self.docs = {f"tag{i:05d}": doc(i) for i in range(10_000)}
    def read_page(self, key): return self.docs.get(key)
    def ping(self): pass
store = Store()

def run(app, paths):
    env0 = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "QUERY_STRING": "", "SERVER_NAME": "bench", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False, "HTTP_HOST": "bench"}
    statuses = {}
    def start_response(status, headers, exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1
    t = time.process_time()
    for p in paths:
        e = dict(env0); e["PATH_INFO"] = p
        body = b"".join(app(e, start_response))
    return (time.process_time() - t) / len(paths) * 1e6, statuses

def app_for(settings):
    app = create_app(settings, store)
    if mode == "flask-routes":  # without the WSGI router: the same handler as Flask views
        import flask
        app.wsgi_app = app.wsgi_app.flask_wsgi
        def view(rep, name):
            reply = views.answer(app.services, rep, name, flask.request.environ)
            return flask.Response(reply.body, status=reply.status, headers=reply.headers)
        for rep in views.REPRESENTATIONS:
            app.add_url_rule(rep.prefix + "<name>", rep.kind, lambda name, rep=rep: view(rep, name))
    return app

hot_app = app_for(Settings())
cold_app = app_for(Settings(cache_ttl_seconds=0))
run(hot_app, ["/tags/tag00000"] * 1000); run(cold_app, ["/tags/tag%05d" % i for i in range(1000)])
hot, s1 = run(hot_app, ["/tags/tag00000"] * requests)
cold, s2 = run(cold_app, ["/tags/tag%05d" % (i % 10_000) for i in range(requests // 4)])
assert set(s1) == {"200 OK"} and set(s2) == {"200 OK"}, (s1, s2)
print(json.dumps({"hot_us": hot, "uncached_us": cold}))
'''


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="+", help="label=DIR")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--without-speedups", action="store_true")
    args = p.parse_args(argv)
    variants = [(label, str(Path(d).resolve()), "") for label, d in (v.split("=", 1) for v in args.variants)]
    if args.without_speedups:
        last, root = variants[-1][:2]
        variants += [(f"{last}, escaped tiles only", root, "escaped-tiles"),
                     (f"{last}, tag routes as Flask views", root, "flask-routes")]
    print(f"load average before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; Python {platform.python_version()}", flush=True)
    results: dict[str, list[dict]] = {v[0]: [] for v in variants}
    for r in range(args.rounds):
        for label, root, mode in (variants if r % 2 == 0 else variants[::-1]):
            out = subprocess.run([sys.executable, "-c", CHILD, root, str(args.requests), mode], check=True,
                                 capture_output=True, text=True, cwd=root).stdout
            results[label].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {r + 1} {label}: {results[label][-1]}", flush=True)
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = variants[0][0]
    med = {lbl: {k: statistics.median(x[k] for x in rs) for k in ("hot_us", "uncached_us")} for lbl, rs in results.items()}
    print("\n| variant | hot µs/req (median) | vs first | uncached µs/req (median) | vs first |\n|---|---:|---:|---:|---:|")
    for lbl, m in med.items():
        print(f"| {lbl} | {m['hot_us']:.1f} | {m['hot_us'] / med[base]['hot_us']:.2f} × | {m['uncached_us']:.0f} | "
              f"{m['uncached_us'] / med[base]['uncached_us']:.2f} × |")


if __name__ == "__main__":
    main()
