"""The whole service on one machine: emulators, topics, table, the streaming job, the web server
and sample traffic, then the URL to open.

    python -m devstack.stack up            # foreground; Ctrl-C stops everything
    python -m devstack.stack up --detach   # leave it running; stop with `python -m devstack.stack down`
    python -m devstack.stack down
    python -m devstack.stack status
    python -m devstack.stack relaunch [--job post-events|top-posts]   # one job, on a new generation

Ports and names are the local defaults of DESIGN.md (Pub/Sub emulator :8085, Bigtable emulator
:8086, web http://127.0.0.1:8080, project local-hashtags, instance local, table hashtags).
State (PIDs, count generations, logs, the post-event archive) lives in .run/.

What the local runner guarantees on a stop or relaunch (README "Stopping and relaunching"): a job
stopped with SIGTERM or Ctrl-C (``down``, ``relaunch``) pulls no more, fires its open windows and
writes its archive lines before it exits, so every message it acknowledged is counted and archived;
``relaunch`` then starts it on a NEW count generation (one more than any recorded) and records the new
PID and generation. It cannot guarantee that for a job killed hard (SIGKILL, a crash, a flush longer
than processes.JOB_STOP_SECONDS): the local reader acknowledges on pull, so what that job held is
lost from the counts and the archive alike, and only a re-publish brings it back.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

from devstack import emulators, loadgen, processes
from devstack.resources import ensure_all
from hashtags import settings as hs

warnings.filterwarnings("ignore", message="Connecting to Bigtable emulator")
ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
PIDS = RUN / "pids.json"
GENERATIONS = RUN / "generations.json"  # {job name: its count generation}
JOBS = ("post-events", "top-posts")
LOGS = RUN / "logs"
ARCHIVE = RUN / "archive"


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def _save_pids(pids: dict) -> None:
    RUN.mkdir(exist_ok=True)
    PIDS.write_text(json.dumps(pids, indent=1))


def _save_generations(generations: dict) -> None:
    RUN.mkdir(exist_ok=True)
    GENERATIONS.write_text(json.dumps(generations, indent=1))


def _job_name(read: str) -> str:
    return f"streaming-{read}"


def down() -> int:
    if not PIDS.exists():
        _say("nothing recorded in .run/pids.json: not running")
        return 0
    pids = json.loads(PIDS.read_text())
    # Stop in reverse order of start: web, jobs, then the emulators.
    for name in reversed(list(pids)):
        _say(f"stopping {name} (pid {pids[name]})")
        if name.startswith("streaming-"):
            if not processes.stop_job(pids[name]):
                _say(f"{name} did not finish flushing in {processes.JOB_STOP_SECONDS}s: killed")
        else:
            processes.stop(pids[name], timeout=20)
    PIDS.unlink()
    GENERATIONS.unlink(missing_ok=True)
    return 0


def relaunch(read: str) -> int:
    """Stop one streaming job (it flushes) and start it again on a new count generation; the
    stack's records (.run/pids.json, .run/generations.json) follow."""
    if not PIDS.exists():
        print("ERROR: no stack recorded in .run/pids.json: start one with `make dev-detach`", file=sys.stderr)
        return 2
    pids = json.loads(PIDS.read_text())
    name = _job_name(read)
    if name not in pids:
        print(f"ERROR: {name} is not in .run/pids.json", file=sys.stderr)
        return 2
    generations = json.loads(GENERATIONS.read_text()) if GENERATIONS.exists() else {}
    old_gen = generations.get(name, 0)
    new_gen = max([0, *generations.values()]) + 1  # new for the table: no job ever wrote h.<new_gen>
    s = hs.Settings.from_env(os.environ)
    env = processes.emulator_env(hs.LOCAL_PUBSUB_HOST, hs.LOCAL_BIGTABLE_HOST)
    _say(f"stopping {name} (pid {pids[name]}, generation {old_gen}): it flushes its windows and archive first")
    clean, job = processes.relaunch_streaming_job(pids[name], s, ARCHIVE, LOGS / f"{name}.log", env,
                                                  generation=new_gen, read=read, early_firing_seconds=5)
    if not clean:
        _say(f"WARNING: {name} was killed after {processes.JOB_STOP_SECONDS}s: what it held is lost "
             "(counts and archive); the nightly cannot repair it")
    pids[name] = job.pid
    generations[name] = new_gen
    _save_pids(pids)
    _save_generations(generations)
    _say(f"relaunched {name}: pid {job.pid}, generation {new_gen} (log {LOGS / (name + '.log')})")
    return 0


def status() -> int:
    if not PIDS.exists():
        _say("not running")
        return 1
    generations = json.loads(GENERATIONS.read_text()) if GENERATIONS.exists() else {}
    for name, pid in json.loads(PIDS.read_text()).items():
        try:
            os.kill(pid, 0)
            state = "running"
        except ProcessLookupError:
            state = "DEAD"
        gen = f"  generation {generations[name]}" if name in generations else ""
        print(f"{name:24} pid {pid:<8} {state}{gen}")
    return 0


# Part of the sample is stamped over the 7 days before today (history): the streaming job archives
# those events but does not count them (older than its allowed lateness), so start-up runs one
# reconciliation over the archive, which writes their base counts, day cells and related tags.
HISTORY_DAYS, HISTORY_FRACTION = 7, 0.5
# Tags made to trend at start-up, each used once by BURST_ACCOUNTS new accounts (docs/TRENDS.md:
# the floor is 5 distinct accounts in the trailing hour, and a tag never used before expects ~0).
BURST_TAGS = ("eclipse", "meteorshower", "northernlights")
BURST_ACCOUNTS = 40


def _publish_sample(s: hs.Settings, args) -> tuple[loadgen.Expected, list[str]]:
    """The sample post events (half of them over the past days) and top-posts lists for the 20
    biggest tags; the exact expected counts go to .run/expected.json. Returns them and those tags."""
    _say(f"publishing {args.events} sample post events ({HISTORY_FRACTION:.0%} over the past {HISTORY_DAYS} days) "
         "and top-posts lists")
    exp = loadgen.Expected()
    msgs = loadgen.generate(args.events, seed=args.seed, expected=exp, deletes=0.05, malformed=0.02,
                            history_days=HISTORY_DAYS, history_fraction=HISTORY_FRACTION)
    loadgen.publish(msgs, s.project, s.post_events_topic, rate=args.rate, total=args.events)
    top = [k for k, _ in exp.counts.most_common(20)]
    loadgen.publish(loadgen.top_posts_messages(exp, top), s.project, s.top_posts_topic, total=len(top),
                    progress=False)
    (RUN / "expected.json").write_text(json.dumps(exp.to_json(), ensure_ascii=False, indent=1))
    return exp, top


def _archived_lines() -> int:
    """Events in the archive's closed files (the job writes a temp file, then renames it)."""
    return sum(sum(1 for _ in f.open("rb")) for f in ARCHIVE.glob("arrived=*/*.jsonl"))


def _fresh_archive() -> None:
    """The emulators start empty, so the archive starts empty too: a previous stack's archive
    would make start-up's reconciliation count posts the sample does not have."""
    if ARCHIVE.exists():
        _say(f"removing the previous stack's archive ({ARCHIVE.relative_to(ROOT)})")
        shutil.rmtree(ARCHIVE)


def _wait_archived(valid_events: int, stall: float) -> None:
    """Until the job has archived every valid sample event: the local job closes its archive
    files every 10 s of processing time (devstack/resources.py --archive_window_seconds). A loaded
    machine is slow, so this gives up only when nothing more was archived for ``stall`` seconds."""
    _say(f"waiting for the {valid_events} valid sample events to be archived")
    archived, progress_at = 0, time.monotonic()
    while archived < valid_events:
        time.sleep(2)
        now_archived = _archived_lines()
        if now_archived > archived:
            archived, progress_at = now_archived, time.monotonic()
        elif time.monotonic() - progress_at > stall:
            raise RuntimeError(f"only {archived} of {valid_events} sample events archived, none for {stall:.0f}s; "
                               f"see {LOGS}/streaming-post-events.log")


def _archive_history_as_arrived_yesterday() -> None:
    """A midnight run reads only arrival days that have ended (hashtags/planning.py), and the job
    archived the whole sample under today: copy its events stamped before today into yesterday's
    folder, as if they had arrived then. The originals stay in today's folder, so the next nightly
    reads them again, which changes nothing (a post's latest event wins: DESIGN.md "post_state")."""
    today = dt.datetime.now(dt.timezone.utc).date()
    past = [line for f in sorted(ARCHIVE.glob(f"arrived={today.isoformat()}/*.jsonl")) for line in f.open("rb")
            if json.loads(line)["event_time"][:10] < today.isoformat()]
    folder = ARCHIVE / f"arrived={(today - dt.timedelta(days=1)).isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events-sample-history.jsonl").write_bytes(b"".join(past))
    _say(f"copied the sample's {len(past)} past events to {folder.relative_to(ROOT)}")


def _reconcile(env: dict) -> None:
    """One full rebuild as of today's midnight (pipelines.backfill, the nightly job on the local
    runner): base counts, day cells and related tags for the sample's past days."""
    _say("running the reconciliation over the archive (full rebuild as of today; log .run/logs/recount.log)")
    with open(LOGS / "recount.log", "ab") as log:
        rc = subprocess.call([sys.executable, "-m", "pipelines.backfill", "--archive", str(ARCHIVE),
                              "--full-rebuild", "--no-progress", "--report-path", str(RUN / "drift")],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:  # no --drift-threshold, so drift (the past days the stream never counted) is not an error
        raise RuntimeError(f"the reconciliation failed (exit {rc}); see {LOGS}/recount.log")


def _wait_for_page(s: hs.Settings, tag: str, expected: int, jobs, wait: float) -> None:
    _say(f"waiting for #{tag} to reach its exact count ({expected}) on the page")
    from hashtag_store import BigtableStore
    store = BigtableStore(s.project, s.bigtable_instance, s.table)
    deadline = time.monotonic() + wait
    shown = None
    try:
        while time.monotonic() < deadline:
            for name, job in zip(JOBS, jobs):
                if job.poll() is not None:
                    raise RuntimeError(f"streaming job ({name}) exited; see {LOGS}/streaming-{name}.log")
            doc = store.read_page(tag)
            shown = doc.total_posts if doc else None
            if doc and shown == expected and len(doc.top_posts) == 100:
                return
            time.sleep(2)
        _say(f"still converging (#{tag} shows {shown}); the page will catch up")
    finally:
        store.close()


def _publish_bursts(s: hs.Settings, seed: int) -> tuple[str, ...]:
    """Make BURST_TAGS trend now (loadgen.burst: many accounts, one post each)."""
    _say(f"publishing bursts ({BURST_ACCOUNTS} accounts each) for {', '.join('#' + t for t in BURST_TAGS)}")
    for tag in BURST_TAGS:
        loadgen.publish(loadgen.burst(tag, BURST_ACCOUNTS, seed=seed), s.project, s.post_events_topic,
                        total=BURST_ACCOUNTS, progress=False)
    return BURST_TAGS


def up(args) -> int:
    ok, why = emulators.emulators_available()
    if not ok:
        print(f"ERROR: the Google Cloud CLI emulators are missing: {why}", file=sys.stderr)
        return 2
    if PIDS.exists():
        print("ERROR: a stack is already recorded in .run/pids.json: run `python -m devstack.stack down` first",
              file=sys.stderr)
        return 2
    web_port = _port(hs.LOCAL_WEB_URL)
    for port in (_port(hs.LOCAL_PUBSUB_HOST), _port(hs.LOCAL_BIGTABLE_HOST), web_port):
        if _listening(port):
            print(f"ERROR: port {port} is already in use", file=sys.stderr)
            return 2
    LOGS.mkdir(parents=True, exist_ok=True)
    pids: dict[str, int] = {}
    try:
        _say("starting the Bigtable and Pub/Sub emulators")
        bt = emulators.start_bigtable(_port(hs.LOCAL_BIGTABLE_HOST), log_dir=LOGS)
        pids["bigtable-emulator"] = bt.proc.pid
        _save_pids(pids)
        ps = emulators.start_pubsub(_port(hs.LOCAL_PUBSUB_HOST), log_dir=LOGS)
        pids["pubsub-emulator"] = ps.proc.pid
        _save_pids(pids)
        env = processes.emulator_env(ps.address, bt.address)
        os.environ.update({"PUBSUB_EMULATOR_HOST": ps.address, "BIGTABLE_EMULATOR_HOST": bt.address})
        s = hs.Settings.from_env(os.environ)
        _say(f"creating topics, subscriptions and table {s.table!r} in project {s.project!r}")
        ensure_all(s)

        _fresh_archive()
        _say("starting the streaming job (BundleBasedDirectRunner; one process per subscription)")
        jobs = processes.start_streaming_jobs(s, ARCHIVE, LOGS, env, early_firing_seconds=5)
        for job, read in zip(jobs, JOBS):
            pids[_job_name(read)] = job.pid
        _save_pids(pids)
        _save_generations({_job_name(read): 0 for read in JOBS})

        _say("starting the web server (serving/server.py: granian, as in the image; dev images on)")
        web_env = dict(env, HASHTAGS_DEV_IMAGES="1", WEB_CONCURRENCY="2")
        with open(LOGS / "web.log", "ab") as log:
            web = subprocess.Popen([sys.executable, "-m", "serving.server", "--host", "127.0.0.1",
                                    "--port", str(web_port)], cwd=ROOT, env=web_env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        pids["web"] = web.pid
        _save_pids(pids)
        processes.wait_http(f"{hs.LOCAL_WEB_URL}/healthz", 60)

        exp, top = _publish_sample(s, args)
        _wait_archived(exp.published + exp.deleted, stall=60)
        _archive_history_as_arrived_yesterday()
        _reconcile(env)
        tag = top[0]
        _wait_for_page(s, tag, exp.counts[tag], jobs, args.wait)
        bursts = _publish_bursts(s, args.seed)
    except BaseException:
        _say("start-up failed: stopping what was started")
        down()
        raise

    url = f"{hs.LOCAL_WEB_URL}/tags/{tag}"
    print()
    print(f"  Open:  {url}")
    print(f"  API:   {hs.LOCAL_WEB_URL}/api/tags/{tag}")
    print(f"  Other populated tags: {', '.join('#' + t for t in top[1:6])}")
    print(f"  Trending (a new list every minute; the sample's own tags are new and rank first, then the "
          f"bursts of {BURST_ACCOUNTS} accounts for {', '.join('#' + b for b in bursts)}): "
          f"{hs.LOCAL_WEB_URL}/trends  {hs.LOCAL_WEB_URL}/api/v1/trends/tags?limit=40")
    print(f"  More traffic: PUBSUB_EMULATOR_HOST={hs.LOCAL_PUBSUB_HOST} .venv/bin/python -m devstack.loadgen "
          f"--count 5000 --rate 200 --print-expected 10")
    print(f"  Recount again (nightly job) over the archive: BIGTABLE_EMULATOR_HOST={hs.LOCAL_BIGTABLE_HOST} "
          f".venv/bin/python -m pipelines.backfill --full-rebuild --archive {ARCHIVE.relative_to(ROOT)}")
    print(f"  Logs: {LOGS.relative_to(ROOT)}/   Expected counts: .run/expected.json")
    print()
    if args.detach:
        print("  Stop with: .venv/bin/python -m devstack.stack down  (or `make down`)")
        return 0
    print("  Ctrl-C stops everything.", flush=True)
    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stop["now"]:
        time.sleep(0.5)
    print()
    return down()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack.stack", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start everything and publish sample traffic")
    u.add_argument("--events", type=int, default=3000, help="sample post events to publish")
    u.add_argument("--rate", type=float, default=0, help="messages/s (0: as fast as possible)")
    u.add_argument("--seed", type=int, default=1)
    u.add_argument("--wait", type=float, default=180, help="seconds to wait for the sample counts to land")
    u.add_argument("--detach", action="store_true", help="return after start-up; stop with `down`")
    sub.add_parser("down", help="stop everything recorded in .run/pids.json")
    sub.add_parser("status", help="show the recorded processes")
    r = sub.add_parser("relaunch", help="stop one streaming job (it flushes) and start it on a new count generation")
    r.add_argument("--job", choices=JOBS, default="post-events")
    args = ap.parse_args(argv)
    if args.cmd == "up":
        return up(args)
    if args.cmd == "relaunch":
        return relaunch(args.job)
    if args.cmd == "down":
        return down()
    return status()


if __name__ == "__main__":
    sys.exit(main())
