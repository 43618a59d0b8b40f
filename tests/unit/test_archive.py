"""The archive writer (pipelines/archive.py): arrival-date layout, lines that round-trip, dead
letters for unencodable lines, and failed renames that are retried, counted and never lose an event.

Failures are injected through a FileSystem of our own, registered under the scheme ``flaky://``
(Beam picks a FileSystem by scheme among FileSystem's subclasses): it delegates to the local file
system and fails, or silently skips, the next N renames. Cloud Storage is played by another,
``atomic://``: an object appears only when its writer is closed, a writer left by an exception
leaves nothing (what GCS's resumable upload does), and every copy and rename is counted."""
from __future__ import annotations

import collections
import datetime as dt
import io
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.localfilesystem import LocalFileSystem
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from hashtags import archive as layout
from hashtags.messages import PostEvent, parse_post_event
from pipelines import archive
from pipelines.archive import ArchiveEvents, arrival_day, objects_appear_at_close
from pipelines.transforms import event_json_line, pubsub_problems

UTC = dt.timezone.utc
SCHEME = "flaky://"
# One window per UTC day: every test run falls in one window, so file names (and a rerun's) are fixed.
DAY = 86_400


class _LocalUnderScheme(LocalFileSystem):
    """The local file system under ``<scheme>://`` (each subclass's scheme): every path is mapped
    back to the local one. Beam picks a FileSystem by scheme among ALL FileSystem subclasses, so
    this base needs a scheme of its own too, one no path uses."""

    @classmethod
    def scheme(cls):
        return "local-under-scheme"

    @classmethod
    def _local(cls, path: str) -> str:
        prefix = cls.scheme() + "://"
        return path[len(prefix):] if path.startswith(prefix) else path

    def create(self, path, *args, **kwargs):
        return super().create(self._local(path), *args, **kwargs)

    def mkdirs(self, path):
        return super().mkdirs(self._local(path))

    def match(self, patterns, limits=None):
        return super().match([self._local(p) for p in patterns], limits)

    def exists(self, path):
        return super().exists(self._local(path))

    def delete(self, paths):
        return super().delete([self._local(p) for p in paths])

    def copy(self, sources, destinations):
        return super().copy([self._local(p) for p in sources], [self._local(p) for p in destinations])

    def rename(self, sources, destinations):
        return super().rename([self._local(p) for p in sources], [self._local(p) for p in destinations])


class FlakyFileSystem(_LocalUnderScheme):
    """The local file system under ``flaky://``; renames fail (or do nothing) while told to."""

    fail_renames = 0  # the next N renames raise BeamIOError
    skip_renames = 0  # the next N renames return without moving anything (a swallowed error)
    rename_calls = 0

    @classmethod
    def scheme(cls):
        return "flaky"

    def rename(self, sources, destinations):
        cls = FlakyFileSystem
        cls.rename_calls += 1
        if cls.fail_renames > 0:
            cls.fail_renames -= 1
            raise BeamIOError("injected rename failure", {(sources[0], destinations[0]): IOError("boom")})
        if cls.skip_renames > 0:
            cls.skip_renames -= 1
            return
        return super().rename(sources, destinations)


class AtomicFileSystem(_LocalUnderScheme):
    """The local file system under ``atomic://``, with GCS's visibility: the bytes written go to
    memory and become the file at ``close()``; a writer whose ``with`` block raised is discarded."""

    copies = renames = created = 0
    fail_writes = 0  # the next N writers raise on their first write

    @classmethod
    def scheme(cls):
        return "atomic"

    def create(self, path, *args, **kwargs):
        cls = AtomicFileSystem
        cls.created += 1
        fail = cls.fail_writes > 0
        cls.fail_writes -= fail
        return _ObjectWriter(Path(self._local(path)), fail)

    def copy(self, sources, destinations):
        AtomicFileSystem.copies += len(sources)
        return super().copy(sources, destinations)

    def rename(self, sources, destinations):
        AtomicFileSystem.renames += len(sources)
        return super().rename(sources, destinations)


class _ObjectWriter(io.BytesIO):
    def __init__(self, path: Path, fail: bool):
        super().__init__()
        self._path, self._fail, self._discard = path, fail, False

    def write(self, b):
        if self._fail:
            raise IOError("injected upload failure")
        return super().write(b)

    def __exit__(self, exc_type, *rest):
        self._discard = exc_type is not None  # BlobWriter.__exit__: terminate() the upload
        return super().__exit__(exc_type, *rest)

    def close(self):
        if not self.closed and not self._discard:
            self._path.parent.mkdir(parents=True, exist_ok=True)  # object stores have no folders
            self._path.write_bytes(self.getvalue())
        super().close()


@pytest.fixture
def atomic(monkeypatch):
    AtomicFileSystem.copies = AtomicFileSystem.renames = AtomicFileSystem.created = 0
    AtomicFileSystem.fail_writes = 0
    monkeypatch.setattr(archive, "ATOMIC_SCHEMES", archive.ATOMIC_SCHEMES | {"atomic"})
    yield AtomicFileSystem


@pytest.fixture
def flaky():
    FlakyFileSystem.fail_renames = FlakyFileSystem.skip_renames = FlakyFileSystem.rename_calls = 0
    yield FlakyFileSystem
    FlakyFileSystem.fail_renames = FlakyFileSystem.skip_renames = 0


def options() -> PipelineOptions:
    return PipelineOptions(["--runner=BundleBasedDirectRunner", "--streaming"])


def event(i: int, when: str = "2026-11-30T10:00:00Z", kind: str = "published", caption: str | None = None):
    parsed = parse_post_event(json.dumps({
        "event": kind, "post_id": f"p{i}", "user_id": f"u{i % 7}", "caption": caption or f"#a #t{i % 13}",
        "image_url": f"https://img.example/{i}.jpg", "event_time": when}).encode())
    assert isinstance(parsed, PostEvent), parsed
    return parsed


def archived_lines(root: Path) -> dict[str, list[bytes]]:
    """Every line of every archive file, by arrival folder; split on b"\\n" only (a caption may hold
    U+2028, which str.splitlines() would also split on)."""
    out = collections.defaultdict(list)
    for pattern in layout.partition_glob(str(root)):
        for f in Path("/").glob(pattern.lstrip("/")):
            data = f.read_bytes()
            assert data.endswith(b"\n")
            out[f.parent.name].extend(data[:-1].split(b"\n"))
    return dict(out)


def run(events, root: str, **kwargs):
    p = beam.Pipeline(options=options())
    _ = p | beam.Create(events) | ArchiveEvents(root, DAY, retry_delay_seconds=0, **kwargs)
    run_result = p.run()
    run_result.wait_until_finish()
    return run_result


def counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(c.committed for c in found)


def temp_files(root: Path) -> list[Path]:
    return [f for f in (root / layout.TEMP_FOLDER).rglob("*") if f.is_file()]


def test_every_event_lands_once_under_its_arrival_day_and_round_trips(tmp_path):
    events = [event(1, "2026-11-20T23:59:59Z"), event(2, "2026-11-21T00:00:00Z"),
              event(1, "2026-11-21T08:00:00Z", "deleted"),
              event(3, "2019-01-01T00:00:00Z"),  # years old: still archived, in TODAY's folder
              event(4, caption="#ünïcode line\u2028separator and \"quotes\"\nnewline")]
    before = dt.datetime.now(UTC).date().isoformat()
    p = beam.Pipeline(options=options())
    result = p | beam.Create(events) | ArchiveEvents(str(tmp_path), DAY, launch="L1")
    assert_that(result.files | beam.Map(lambda f: f.lines), equal_to([5]), label="one file of 5 lines")
    assert_that(result.dead, equal_to([]), label="dead")
    p.run().wait_until_finish()
    after = dt.datetime.now(UTC).date().isoformat()

    by_day = archived_lines(tmp_path)
    assert len(by_day) == 1 and next(iter(by_day)) in {f"arrived={before}", f"arrived={after}"}
    lines = next(iter(by_day.values()))
    assert sorted(lines) == sorted(event_json_line(e).encode("utf-8") for e in events)
    assert sorted((parse_post_event(line) for line in lines), key=repr) == sorted(events, key=repr)
    names = [f.name for f in tmp_path.glob("arrived=*/*")]
    assert all(n.startswith("events-L1-") and n.endswith("-s000-p0.jsonl") for n in names), names
    assert temp_files(tmp_path) == []


def test_a_failed_rename_is_retried_and_counted_and_no_event_is_missing(tmp_path, flaky):
    events = [event(i) for i in range(300)]
    flaky.fail_renames = 2
    result = run(events, SCHEME + str(tmp_path), shards=3)
    assert counter(result, "archive_write_failures") == 2
    assert counter(result, "archive_files") == 3 and counter(result, "archive_lines") == 300
    assert flaky.rename_calls == 3 + 2
    lines = [line for day in archived_lines(tmp_path).values() for line in day]
    assert collections.Counter(lines) == collections.Counter(event_json_line(e).encode() for e in events)
    assert temp_files(tmp_path) == []


def test_a_rename_that_silently_did_nothing_is_caught_by_the_size_check(tmp_path, flaky):
    events = [event(i) for i in range(50)]
    flaky.skip_renames = 1  # what fileio.WriteToFiles would have reported as written
    result = run(events, SCHEME + str(tmp_path))
    assert counter(result, "archive_write_failures") == 1
    lines = [line for day in archived_lines(tmp_path).values() for line in day]
    assert sorted(lines) == sorted(event_json_line(e).encode() for e in events)


def test_exhausted_attempts_fail_the_bundle_which_the_runner_retries(tmp_path, flaky):
    events = [event(i) for i in range(40)]
    # 3 attempts per bundle: the first bundle raises after 3 failed renames, the runner retries
    # the bundle (the local runner up to 4 times), whose 3rd attempt succeeds.
    flaky.fail_renames = 5
    result = run(events, SCHEME + str(tmp_path), max_attempts=3, launch="L2")
    assert flaky.rename_calls == 6
    assert counter(result, "archive_files") == 1  # the failed bundle's metrics are not committed
    lines = [line for day in archived_lines(tmp_path).values() for line in day]
    assert collections.Counter(lines) == collections.Counter(event_json_line(e).encode() for e in events)
    assert temp_files(tmp_path) == []


def test_a_store_that_never_recovers_stops_the_job_and_leaves_no_partial_file(tmp_path, flaky):
    events = [event(i) for i in range(40)]
    flaky.fail_renames = 1_000
    with pytest.raises(Exception, match="not written after 3 attempts"):
        run(events, SCHEME + str(tmp_path), max_attempts=3, launch="L3")
    assert flaky.rename_calls == 4 * 3  # 4 bundle attempts (local runner) x 3 writes: loud, not dropped
    assert archived_lines(tmp_path) == {} and temp_files(tmp_path) == []

    # Rerun with the same launch (what a retried bundle does): every event, exactly once, even twice.
    flaky.fail_renames = 0
    run(events, SCHEME + str(tmp_path), max_attempts=3, launch="L3")
    run(events, SCHEME + str(tmp_path), max_attempts=3, launch="L3")
    lines = [line for day in archived_lines(tmp_path).values() for line in day]
    assert collections.Counter(lines) == collections.Counter(event_json_line(e).encode() for e in events)


def test_a_line_that_cannot_be_encoded_is_a_dead_letter_not_a_crash(tmp_path):
    good = event(1)
    bad = PostEvent("published", "p\ud800", "u", "#lone \ud800 surrogate", None,
                    dt.datetime(2026, 11, 30, tzinfo=UTC))
    p = beam.Pipeline(options=options())
    result = p | beam.Create([good, bad]) | ArchiveEvents(str(tmp_path), DAY)
    assert_that(result.dead | beam.Map(lambda m: (m.attributes["dlq_source"],
                                                  m.attributes["dlq_reason"].split(":")[0],
                                                  pubsub_problems(m),
                                                  json.loads(m.data)["post_id"])),
                equal_to([("post-events", "archive", [], "p\ud800")]))
    p.run().wait_until_finish()
    assert [line for day in archived_lines(tmp_path).values() for line in day] == [
        event_json_line(good).encode()]


def test_arrival_day_is_the_utc_date_of_the_stamp():
    midnight = dt.datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert arrival_day(midnight - 0.001) == "2026-11-30"
    assert arrival_day(midnight) == "2026-12-01"


def test_window_must_divide_a_day_so_no_file_spans_two_arrival_days():
    with pytest.raises(ValueError):
        ArchiveEvents("/tmp/a", 7)
    assert ArchiveEvents("/tmp/a", 300).launch != ArchiveEvents("/tmp/a", 300).launch


def test_files_follow_windows_and_size_not_bundles(tmp_path):
    """20 bundles of 10 events in one window: one file (WriteToFiles wrote one per bundle); with
    max_lines_per_file=50 the early count trigger cuts files of 50 lines, still not one per bundle."""
    from apache_beam.testing.test_stream import TestStream

    def stream():
        s = TestStream()
        for b in range(20):
            s = s.add_elements([event(b * 10 + i) for i in range(10)])
        return s.advance_watermark_to_infinity()

    for root, max_lines in ((tmp_path / "one", 100_000), (tmp_path / "cut", 50)):
        p = beam.Pipeline(options=options())
        _ = p | stream() | ArchiveEvents(str(root), DAY, max_lines_per_file=max_lines)
        p.run().wait_until_finish()
        sizes = sorted(len(lines) for lines in _lines_per_file(root))
        assert sum(sizes) == 200
        if max_lines == 100_000:
            assert sizes == [200]
        else:
            assert sizes == [50, 50, 50, 50]


def _lines_per_file(root: Path) -> list[list[bytes]]:
    return [f.read_bytes()[:-1].split(b"\n") for f in root.glob("arrived=*/*.jsonl")]


def test_gcs_is_written_in_place_and_local_paths_through_a_temp_file():
    assert objects_appear_at_close("gs://bucket/post-events")
    assert not objects_appear_at_close("/var/archive") and not objects_appear_at_close("flaky:///tmp/a")


def test_on_a_filesystem_whose_objects_appear_at_close_no_file_is_copied_or_renamed(tmp_path, atomic):
    """The GCS path: each file written once at its final name (no temp object, no copy, no rename),
    one file per configured shard, every event once; a failed upload leaves nothing and is retried."""
    events = [event(i) for i in range(400)]
    atomic.fail_writes = 2
    result = run(events, "atomic://" + str(tmp_path), shards=4, launch="G1")
    assert (atomic.copies, atomic.renames) == (0, 0)
    assert counter(result, "archive_write_failures") == 2
    assert atomic.created == 4 + 2  # one writer per file, plus the two failed attempts
    names = sorted(f.name for f in tmp_path.glob("arrived=*/*.jsonl"))
    assert [n.split("-")[-2] for n in names] == ["s000", "s001", "s002", "s003"]
    assert counter(result, "archive_files") == 4 and counter(result, "archive_lines") == 400
    lines = [line for day in archived_lines(tmp_path).values() for line in day]
    assert collections.Counter(lines) == collections.Counter(event_json_line(e).encode() for e in events)
    assert not (tmp_path / layout.TEMP_FOLDER).exists()


def test_the_shards_default_is_the_reasoned_one():
    from pipelines.options import StreamingOptions

    assert StreamingOptions([]).archive_shards == archive.DEFAULT_SHARDS == 8
