"""The post-event archive writer (DESIGN.md "Archive"; layout in hashtags/archive.py).

    ArchiveEvents(root) : PCollection[PostEvent] -> ArchiveResult(files, dead)

Contract
- Every valid post event becomes one line, ``pipelines.transforms.event_json_line(e)`` (the message's
  own fields) encoded as UTF-8, in ``<root>/arrived=YYYY-MM-DD/events-<launch>-<window>-s<shard>-p<pane>.jsonl``.
  ``arrived=`` is the UTC date of the wall clock when this step saw the event (processing time),
  never its event time: an event of any age is kept, in the folder of the day it arrived.
- A line that cannot be encoded is not archived: it leaves on ``result.dead`` as a dead letter (a
  PubsubMessage with ``dlq_reason``) for the post-events DLQ. Nothing raises per element.
- How a file is written depends on the filesystem, decided in ONE place
  (:func:`objects_appear_at_close`):
  * Cloud Storage (``gs://``): straight to its final name. A GCS object becomes visible only when
    its upload is finalized, i.e. at ``close()`` (google-cloud-storage's ``BlobWriter``, which
    Beam's ``GcsIO.open(mode="wb")`` returns in 2.77: nothing is uploaded before the first 16 MB
    chunk, and the last chunk finalizes the object; its ``__exit__`` on an exception calls
    ``terminate()``, cancelling the upload, so a failed write leaves no partial object). A rename
    on GCS is a copy plus a delete, and with the bucket's 7-day soft delete every temporary byte
    would be billed for a week: no temp object, no copy.
  * Local paths (and any other filesystem): a temp file ``<root>/.tmp/<launch>/<random>.partial``
    renamed to its final name, so a reader never sees a half-written file.
  Either way the final file is then checked (exists, size = bytes written). Any failure of that
  sequence increments the counter ``hashtags/archive_write_failures``,
  is logged as a WARNING, and is retried up to ``max_attempts`` times; then
  the DoFn RAISES ``ArchiveWriteError``: the bundle fails and the runner retries it (Dataflow retries
  a streaming work item until it succeeds; the local runner stops the job). Nothing is dropped and
  nothing is silent. This replaces Beam's ``fileio.WriteToFiles``, which (2.77, io/fileio.py,
  ``_MoveTempFilesIntoFinalDestinationFn``) catches ``BeamIOError`` from its rename, logs it at DEBUG
  and reports the file as written, and which puts its temp files under ``--temp_location`` (a bucket
  with a 7-day lifecycle in production).
- The final name is deterministic for (launch, window, shard, pane): a retried bundle rewrites the
  same file with the same lines (idempotent). ``launch`` is a token made when the pipeline is built
  (UTC time + random), so a relaunched or updated job never overwrites an earlier job's files.
  Were a line ever archived twice (a retried bundle on a runner that re-groups differently, a
  redelivered message in two panes), the nightly would still count it once: it keeps ONE winner
  per post_id, the latest by (event time, kind, event id) (pipelines/recount.py
  ``LatestPerPostFn`` over ``hashtags.post_state.later``), so a duplicate line is a candidate
  equal to one already there and changes no count.

Shards, and the default (``--archive_shards``, 8)
- A (day, shard) key is one GroupByKey key: its pane is grouped and written by ONE worker thread.
  The seed's rate is 100,000 posts/min (~1,670/s): with the 300 s window that is ~500,000 lines
  (~150 MB at ~300 bytes a line) per window. One shard would put the whole stream through one key
  and one upload, and cut a file every 100,000 lines (``max_lines_per_file``) anyway. 8 shards
  (the production job's 3 workers x 2 vCPUs, rounded up to leave room for a scale-up) give
  ~62,500 lines (~19 MB) per shard and window at the seed's rate: under the 100,000-line cut even
  at 1.6x the rate, so steady state stays at one file per shard per window: 8 x 288 = 2,304 files a
  day. Locally (~200 events/s at most) the stack passes 1.

Windowing, and why
- Each event is re-stamped with the wall clock, keyed by (arrival day, shard) and cut into
  ``FixedWindows(window_seconds)`` of that processing time; DISCARDING; one GroupByKey; one file per
  (key, window, pane). A window never spans two UTC days when ``window_seconds`` divides 86,400
  (checked), and the day is in the key anyway.
- Trigger: ``AfterWatermark(early=AfterAny(AfterProcessingTime(window_seconds), AfterCount(max_lines)),
  late=AfterProcessingTime(window_seconds))``, allowed lateness 1 day. On Dataflow the input watermark
  follows EVENT time (``timestamp_attribute``); the re-stamped timestamps are ahead of it by the
  pipeline's lag, so the on-time pane fires when the event-time watermark passes the window's end.
  When the watermark stalls (a backlog of old events after a relaunch), the early processing-time
  firing still cuts a file at most ``window_seconds`` after the pane's first line. A re-stamped event
  is LATE only if the watermark runs ahead of the wall clock (future-skewed event times, bounded to
  settings.MAX_FUTURE_SKEW by validation): the day of lateness makes a drop impossible in practice,
  and late data fires at most once per ``window_seconds``. Locally the reader's watermark is the wall
  clock, so each window fires once, just after it ends. (A global window with a repeated
  processing-time trigger was tried before and lagged minutes on the local runner: see git history.)
- Bound: files per arrival day <= shards x (86,400 / window_seconds) x (1 early-or-on-time pane + 1
  on-time pane for lines that arrived after an early firing + late panes) + lines / max_lines.
  Steady state: one file per shard per window (288 a day per shard with the 300 s default); never a
  function of bundles. Measured: docs/BENCHMARKS.md "Archive"; the decision record: docs/ARCHIVE.md.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
import zlib
from typing import Iterable, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration

from hashtags import archive as layout
from hashtags.messages import PostEvent
from pipelines.transforms import DEAD, dead_letter, event_json_line

log = logging.getLogger(__name__)

# Filesystems on which a file appears only when it is closed (see the module doc): written in place.
ATOMIC_SCHEMES = frozenset({"gs"})
DEFAULT_SHARDS = 8  # module doc, "Shards"
DLQ_SOURCE = "post-events"  # archive dead letters go to the post-events DLQ with their own reason
ALLOWED_LATENESS = Duration(seconds=24 * 3600)
NAMESPACE = "hashtags"


class ArchiveWriteError(IOError):
    """A file could not be written and verified after every attempt: fails the bundle."""


class ArchivedFile(NamedTuple):
    path: str
    lines: int
    size: int


class ArchiveResult(NamedTuple):
    files: beam.PCollection  # ArchivedFile, one per file written
    dead: beam.PCollection  # PubsubMessage, lines that could not be encoded


def launch_token(now: dt.datetime | None = None) -> str:
    """Unique per pipeline construction (one launch): ``YYYYMMDDTHHMMSSZ-<8 hex>``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def objects_appear_at_close(root: str) -> bool:
    """Whether files under ``root`` become visible only when closed (then written in place)."""
    return FileSystems.get_scheme(root) in ATOMIC_SCHEMES


def arrival_day(timestamp: float) -> str:
    """The UTC date (ISO) of a processing-time stamp: the ``arrived=`` folder."""
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).date().isoformat()


class _ToArchiveLine(beam.DoFn):
    """PostEvent → ((arrival day, shard), UTF-8 line) stamped with the wall clock; DEAD if unencodable."""

    def __init__(self, shards: int):
        self._shards = shards
        self._dead = Metrics.counter(NAMESPACE, "archive_dead_letters")

    def process(self, event: PostEvent):
        try:
            line = event_json_line(event).encode("utf-8")
        except Exception as e:  # a lone surrogate, an unserialisable field: never an exception out
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter(  # dead_letter makes any reason publishable
                _best_effort_bytes(event), {}, f"archive: line not encodable: {type(e).__name__}: {e}",
                DLQ_SOURCE))
            return
        now = time.time()
        yield TimestampedValue(((arrival_day(now), self._shard(event)), line), now)

    def _shard(self, event: PostEvent) -> int:
        if self._shards == 1:
            return 0
        return zlib.crc32(str(event.post_id).encode("utf-8", "surrogatepass")) % self._shards


def _best_effort_bytes(event) -> bytes:
    """Something a reader can inspect in the DLQ: ASCII JSON (surrogates escaped), else the repr."""
    try:
        return json.dumps(event.to_json(), ensure_ascii=True).encode("ascii")
    except Exception:
        return repr(event).encode("utf-8", "backslashreplace")


class _WriteArchiveFile(beam.DoFn):
    """((day, shard), lines) per pane → one verified file; retries, counts and finally raises."""

    def __init__(self, root: str, launch: str, max_attempts: int, retry_delay_seconds: float, in_place: bool):
        self._root = root.rstrip("/")
        self._launch = launch
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay_seconds
        self._in_place = in_place
        self._failures = Metrics.counter(NAMESPACE, "archive_write_failures")
        self._files = Metrics.counter(NAMESPACE, "archive_files")
        self._lines = Metrics.counter(NAMESPACE, "archive_lines")

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        (day, shard), lines = element
        if iter(lines) is lines:  # a one-shot iterator would write an empty file on a retry
            lines = list(lines)
        if next(iter(lines), None) is None:  # an empty pane (e.g. on-time after an early one): no file
            return []
        start = dt.datetime.fromtimestamp(float(win.start), dt.timezone.utc)
        final = (f"{layout.partition_path(self._root, dt.date.fromisoformat(day))}/"
                 f"{layout.file_name(self._launch, start, shard, pane.index if pane else 0)}")
        written = self._write_verified(final, lines)
        self._files.inc()
        self._lines.inc(written.lines)
        return [written]

    def _write_verified(self, final: str, lines: Iterable[bytes]) -> ArchivedFile:
        for attempt in range(1, self._max_attempts + 1):
            try:
                count, size = self._write_once(final, lines)
                _verify(final, size)
                return ArchivedFile(final, count, size)
            except Exception as e:
                self._failures.inc()
                log.warning("archive write failed (attempt %d/%d) for %s: %s: %s",
                            attempt, self._max_attempts, final, type(e).__name__, e)
                if attempt == self._max_attempts:
                    raise ArchiveWriteError(
                        f"archive file {final} not written after {attempt} attempts: {e}") from e
                time.sleep(self._retry_delay * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _write_once(self, final: str, lines: Iterable[bytes]) -> tuple[int, int]:
        if self._in_place:
            return _write_lines(final, lines)
        temp = f"{layout.temp_folder(self._root, self._launch)}/{uuid.uuid4().hex}.partial"
        try:
            written = _write_lines(temp, lines)
            _make_parent(final)
            FileSystems.rename([temp], [final])
        except Exception:
            _delete_quietly(temp)
            raise
        return written


def _write_lines(path: str, lines: Iterable[bytes]) -> tuple[int, int]:
    """Stream the pane's lines into ``path`` (re-iterable: a retry reads them again). On GCS the
    ``with`` matters: the writer's ``__exit__`` cancels the upload when the block raised."""
    count = size = 0
    with FileSystems.create(path, mime_type="application/x-ndjson",
                            compression_type=CompressionTypes.UNCOMPRESSED) as f:
        for line in lines:
            f.write(line)
            f.write(b"\n")
            count += 1
            size += len(line) + 1
    return count, size


def _make_parent(path: str) -> None:
    """Local rename needs the folder; on GCS ``mkdirs`` is a no-op. "Exists" is not an error."""
    try:
        FileSystems.mkdirs(path.rsplit("/", 1)[0])
    except IOError:
        pass  # already there; a real problem surfaces in the rename or the verification


def _verify(path: str, size: int) -> None:
    matched = FileSystems.match([path])[0].metadata_list
    if len(matched) != 1 or matched[0].size_in_bytes != size:
        found = [(m.path, m.size_in_bytes) for m in matched]
        raise ArchiveWriteError(f"after rename, {path} is {found or 'missing'}; expected {size} bytes")


def _delete_quietly(path: str) -> None:
    try:
        if FileSystems.exists(path):
            FileSystems.delete([path])
    except Exception as e:  # an orphan temp file costs storage, never data: log, do not fail
        log.warning("could not delete archive temp file %s: %s", path, e)


class ArchiveEvents(beam.PTransform):
    """PCollection[PostEvent] → files under ``<root>/arrived=YYYY-MM-DD/`` (see the module doc)."""

    def __init__(self, root: str, window_seconds: int = 300, *, shards: int = 1,
                 max_lines_per_file: int = 100_000, max_attempts: int = 5,
                 retry_delay_seconds: float = 1.0, launch: str | None = None):
        super().__init__()
        if window_seconds <= 0 or 86_400 % window_seconds:
            raise ValueError(f"archive window_seconds must divide a day (86400): {window_seconds}")
        if shards < 1 or max_lines_per_file < 1 or max_attempts < 1:
            raise ValueError("archive shards, max_lines_per_file and max_attempts must be >= 1")
        self.root = root
        self.window_seconds = window_seconds
        self.shards = shards
        self.max_lines_per_file = max_lines_per_file
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        self.launch = launch or launch_token()
        self.in_place = objects_appear_at_close(root)

    def expand(self, events) -> ArchiveResult:
        lines = events | "ToLines" >> beam.ParDo(_ToArchiveLine(self.shards)).with_outputs(DEAD, main="lines")
        files = (
            lines.lines
            | "ArrivalWindows" >> beam.WindowInto(
                window.FixedWindows(self.window_seconds),
                trigger=trigger.AfterWatermark(
                    early=trigger.AfterAny(trigger.AfterProcessingTime(self.window_seconds),
                                           trigger.AfterCount(self.max_lines_per_file)),
                    late=trigger.AfterProcessingTime(self.window_seconds)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=ALLOWED_LATENESS)
            | "GroupByDayShard" >> beam.GroupByKey()
            | "WriteFiles" >> beam.ParDo(_WriteArchiveFile(
                self.root, self.launch, self.max_attempts, self.retry_delay_seconds, self.in_place))
        )
        return ArchiveResult(files, lines[DEAD])
