"""Start and stop the Google Cloud CLI's Bigtable and Pub/Sub emulators by their own PIDs.

Used by the local stack (fixed ports from settings) and by the tests (free ports). The binaries are
started directly, never through ``gcloud beta emulators``, whose wrapper leaves the child running.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class EmulatorMissing(RuntimeError):
    """The Google Cloud CLI emulator components are not installed on this machine."""


def sdk_root() -> Path | None:
    env = os.environ.get("CLOUDSDK_ROOT")
    candidates = [Path(env)] if env else []
    gcloud = shutil.which("gcloud")
    if gcloud:
        # /usr/lib/google-cloud-sdk/bin/gcloud (the Debian package) or a symlink to it
        candidates.append(Path(gcloud).resolve().parent.parent)
    candidates += [Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk"),
                   Path.home() / "google-cloud-sdk"]
    for c in candidates:
        if (c / "platform").is_dir():
            return c
    return None


def bigtable_binary() -> Path | None:
    root = sdk_root()
    p = root / "platform" / "bigtable-emulator" / "cbtemulator" if root else None
    return p if p and p.exists() else None


def pubsub_binary() -> Path | None:
    root = sdk_root()
    p = root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator" if root else None
    return p if p and p.exists() and shutil.which("java") else None


def emulators_available() -> tuple[bool, str]:
    missing = []
    if bigtable_binary() is None:
        missing.append("Bigtable emulator (apt: google-cloud-cli-bigtable-emulator)")
    if pubsub_binary() is None:
        missing.append("Pub/Sub emulator + Java (apt: google-cloud-cli-pubsub-emulator, openjdk-17-jre)")
    return (not missing, "; ".join(missing))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode}; log: {log}\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"emulator on {host}:{port} not ready after {timeout}s; log: {log}")


@dataclass
class Emulator:
    name: str
    host: str
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is not None:
            return
        # The Pub/Sub launcher is a shell script that execs java; signal the whole process group.
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def start_bigtable(port: int | None = None, host: str = "localhost", log_dir: Path | None = None) -> Emulator:
    binary = bigtable_binary()
    if binary is None:
        raise EmulatorMissing("Bigtable emulator not found: install google-cloud-cli-bigtable-emulator")
    port = port or free_port()
    log = (log_dir or Path("/tmp")) / f"bigtable-emulator-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary), "-host", host, "-port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    em = Emulator("bigtable", host, port, proc, log)
    try:
        _wait_port("127.0.0.1" if host == "localhost" else host, port, proc, 20, log)
    except Exception:
        em.stop()
        raise
    return em


def start_pubsub(port: int | None = None, host: str = "localhost", log_dir: Path | None = None,
                 data_dir: Path | None = None) -> Emulator:
    binary = pubsub_binary()
    if binary is None:
        raise EmulatorMissing("Pub/Sub emulator (or java) not found: install google-cloud-cli-pubsub-emulator")
    port = port or free_port()
    log = (log_dir or Path("/tmp")) / f"pubsub-emulator-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [str(binary), f"--host={host}", f"--port={port}"]
    if data_dir:
        args.append(f"--dir={data_dir}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    em = Emulator("pubsub", host, port, proc, log)
    try:
        _wait_port("127.0.0.1" if host == "localhost" else host, port, proc, 60, log)
        deadline = time.monotonic() + 30
        while b"Server started" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)
    except Exception:
        em.stop()
        raise
    return em
