"""The real production server process (``python -m serving.server``, granian) around an app with an
in-memory store, for tests of what the server and the app answer on the wire.

``memory_app`` / ``outage_app`` are granian factory targets (``--factory``): the same
``create_app`` + ``serving.app.tune_gc`` as production, with tests/unit/serving_fakes.FakeStore
instead of Bigtable (up, holding ``#love``; or down)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

ROOT = Path(__file__).resolve().parents[2]
HOT_TAG = "love"


def _app(down: bool):
    from hashtags.settings import Settings
    from serving import create_app
    from serving.app import tune_gc
    from tests.unit.serving_fakes import FakeStore, doc

    store = FakeStore({HOT_TAG: doc(HOT_TAG, "Love")})
    store.down = down
    app = create_app(Settings.from_env({}), store=store)
    tune_gc()
    return app


def memory_app():
    return _app(down=False)


def outage_app():
    return _app(down=True)


class Server(NamedTuple):
    port: int
    proc: subprocess.Popen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not answer /healthz")


@contextmanager
def running_server(factory: str = "memory_app", env: dict[str, str] | None = None,
                   log: Path | None = None) -> Iterator[Server]:
    """``python -m serving.server --factory`` on a free loopback port; stopped (SIGTERM) on exit.
    ``factory`` is a name in this module or a ``module:callable`` target."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("HASHTAGS_", "WEB_"))}
    full_env.update({"PYTHONPATH": str(ROOT), "WEB_CONCURRENCY": "1", **(env or {})})
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "serving.server", "--host", "127.0.0.1", "--port", str(port),
                             "--app", factory if ":" in factory else f"tests.integration.web_server:{factory}", "--factory"],
                            cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(port, proc)
        yield Server(port, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if log:
            out.close()


def worker_pids(server: Server) -> list[int]:
    """The server's worker processes (children of the granian main process)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.proc.pid:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")
