"""The post-event archive's layout (DESIGN.md "Archive"). Pure: names and paths, no I/O.

    <archive>/arrived=YYYY-MM-DD/<name>.jsonl[.gz]

One valid post event per line: the post-event message's own fields as JSON (``PostEvent.to_json``).
The folder is the UTC date on which the pipeline RECEIVED the event (its processing time), never its
event time: an event of any age is kept, and a nightly run reads only the days that arrived since
its previous run. The streaming job writes it (pipelines/archive.py); the reconciliation reads it.
"""
from __future__ import annotations

import datetime as dt
import re

PARTITION_KEY = "arrived"
FILE_SUFFIXES = (".jsonl", ".jsonl.gz")
_PARTITION = re.compile(r"(?:^|/)" + PARTITION_KEY + r"=(\d{4}-\d{2}-\d{2})(?:/|$)")


def partition_name(day: dt.date) -> str:
    """``arrived=YYYY-MM-DD``: the folder of the events that arrived on ``day`` (UTC)."""
    return f"{PARTITION_KEY}={day.isoformat()}"


def partition_path(root: str, day: dt.date) -> str:
    return f"{root.rstrip('/')}/{partition_name(day)}"


def partition_glob(root: str, day: dt.date | None = None) -> list[str]:
    """File patterns of one arrival day (or of every day) under ``root``, for ``FileSystems.match``
    / ``fileio.MatchAll``: plain and gzipped JSON lines."""
    folder = partition_path(root, day) if day is not None else f"{root.rstrip('/')}/{PARTITION_KEY}=*"
    return [f"{folder}/*{suffix}" for suffix in FILE_SUFFIXES]


def partition_day(path: str) -> dt.date | None:
    """The arrival day of an archive path (``…/arrived=YYYY-MM-DD/…``), or None."""
    m = _PARTITION.search(path.replace("\\", "/"))
    if not m:
        return None
    try:
        return dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None


def is_archive_file(path: str) -> bool:
    return path.endswith(FILE_SUFFIXES) and partition_day(path) is not None


TEMP_FOLDER = ".tmp"  # under the root: never matched by partition_glob, never an is_archive_file


def file_name(launch: str, window_start: dt.datetime, shard: int, pane: int) -> str:
    """``events-<launch>-<window start, UTC>-s<shard>-p<pane>.jsonl``: one writer's file.

    Deterministic for a (launch, window, shard, pane), so a retried write rewrites the same file;
    ``launch`` differs per job launch, so no job overwrites another's files."""
    return f"events-{launch}-{window_start.strftime('%Y%m%dT%H%M%SZ')}-s{shard:03d}-p{pane}.jsonl"


def temp_folder(root: str, launch: str) -> str:
    return f"{root.rstrip('/')}/{TEMP_FOLDER}/{launch}"
