"""Background processes of the local stack and the tests (the streaming job, the web server):
started with their own process group, stopped by PID (SIGINT, then SIGTERM, then SIGKILL).

A local streaming job stops cleanly on SIGTERM or SIGINT: it pulls no more, fires its open windows,
writes the archive and exits (pipelines/local_reader.py); :func:`stop_job` gives it the time to."""
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
                        early_firing_seconds: int = 5, read: str = "all", generation: int = 0) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "pipelines.streaming_main",
            *streaming_args(s, str(archive_path), early_firing_seconds=early_firing_seconds, read=read),
            f"--count_generation={generation}"]
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


# How long a stopping job may take to flush: its pull in flight (<= 5 s, local_reader), then the
# open windows' firings and the archive files (a few seconds on the local runner), with margin for
# a loaded machine.
JOB_STOP_SECONDS = 90


def stop_job(proc: subprocess.Popen | int, timeout: float = JOB_STOP_SECONDS) -> bool:
    """SIGTERM a streaming job and wait for it to flush and exit; SIGKILL it after ``timeout`` s
    (then what it pulled and had not written is lost). True when it exited by itself."""
    stop_all([proc], ((signal.SIGTERM, timeout),))
    clean = not _running(proc)
    stop_all([proc], ((signal.SIGKILL, 5),))
    return clean


def relaunch_streaming_job(proc: subprocess.Popen | int, s: Settings, archive_path: str | Path, log_path: Path,
                           env: dict, *, generation: int, read: str,
                           early_firing_seconds: int = 5) -> tuple[bool, subprocess.Popen]:
    """Stop one local job (flushing, :func:`stop_job`) and start it again on count generation
    ``generation``, which must be new for the table: the new job's windows start empty, and on
    an old generation its first firing would overwrite the stopped job's hour cells (DESIGN.md
    "Count generations"). Returns (the old job exited by itself, the new process)."""
    clean = stop_job(proc)
    return clean, start_streaming_job(s, archive_path, log_path, env, early_firing_seconds, read=read,
                                      generation=generation)


def _running(proc) -> bool:
    """Whether ``proc`` (a Popen or a PID) has not exited. An exited child not yet reaped by its
    parent (a zombie: e.g. a job of a foreground `stack up` stopped by `stack relaunch`) has exited;
    a zombie thread-group leader whose other threads are still being torn down has not yet."""
    if isinstance(proc, subprocess.Popen):
        return proc.poll() is None
    try:
        if os.waitpid(proc, os.WNOHANG)[0] == proc:  # our own child: reaped now
            return False
    except ChildProcessError:
        pass  # someone else's child
    try:
        os.kill(proc, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir(f"/proc/{proc}/task"))
    except OSError:
        return True
    return state != "Z" or threads > 1


def stop(proc: subprocess.Popen | int, timeout: float = 30) -> None:
    stop_all([proc], ((signal.SIGINT, timeout), (signal.SIGTERM, 10), (signal.SIGKILL, 5)))


def stop_all(procs, escalation) -> None:
    """Signal the process group of every process still running with each ``(signal, seconds)`` of
    ``escalation`` in turn, all at once, until every one has exited."""
    for sig, wait in escalation:
        live = [p for p in procs if _running(p)]
        if not live:
            return
        for proc in live:
            try:
                os.killpg(proc.pid if isinstance(proc, subprocess.Popen) else proc, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_running(p) for p in live):
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
