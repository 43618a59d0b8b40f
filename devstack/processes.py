"""Background processes of the local stack and the tests (the streaming job, the web server):
started with their own process group, stopped by PID (SIGINT, then SIGTERM, then SIGKILL)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devstack.resources import streaming_args
from hashtags.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def emulator_env(pubsub: str | None, bigtable: str | None, base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    if pubsub:
        env["PUBSUB_EMULATOR_HOST"] = pubsub
    if bigtable:
        env["BIGTABLE_EMULATOR_HOST"] = bigtable
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_streaming_job(s: Settings, archive_path: str | Path, log_path: Path, env: dict,
                        early_firing_seconds: int = 5, read: str = "all") -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "pipelines.streaming_main",
            *streaming_args(s, str(archive_path), early_firing_seconds=early_firing_seconds, read=read)]
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def start_streaming_jobs(s: Settings, archive_path: str | Path, log_dir: Path, env: dict,
                         early_firing_seconds: int = 5) -> list[subprocess.Popen]:
    """The streaming job on the local runner: one process per source (see --read in
    pipelines/options.py: the DirectRunner's blocking pulls stall a second source)."""
    return [start_streaming_job(s, archive_path, log_dir / f"streaming-{read}.log", env,
                                early_firing_seconds, read=read)
            for read in ("post-events", "top-posts")]


def stop(proc: subprocess.Popen | int, timeout: float = 30) -> None:
    stop_all([proc], ((signal.SIGINT, timeout), (signal.SIGTERM, 10), (signal.SIGKILL, 5)))


def stop_all(procs, escalation) -> None:
    """Signal the process group of every process still running with each ``(signal, seconds)`` of
    ``escalation`` in turn, all at once, until every one has exited."""
    def running(proc) -> bool:
        if isinstance(proc, subprocess.Popen):
            return proc.poll() is None
        try:
            os.kill(proc, 0)
        except ProcessLookupError:
            return False
        return True

    for sig, wait in escalation:
        live = [p for p in procs if running(p)]
        if not live:
            return
        for proc in live:
            try:
                os.killpg(proc.pid if isinstance(proc, subprocess.Popen) else proc, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(running(p) for p in live):
            time.sleep(0.1)


def wait_http(url: str, timeout: float = 30) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")
