"""Steps 1-2: the plan's archive files, matched on the workers → parsed events (keys, never
captions) → per post, the winner before M."""
from __future__ import annotations

import dataclasses
import datetime as dt
import gzip

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from hashtags import archive, layout, related
from hashtags import post_state as ps
from hashtags.messages import Rejected, parse_post_event_fields
from hashtags.planning import RunPlan, parse_day
from pipelines.recount_steps import COUNTS, NAMESPACE

_TAGS = ps.CANDIDATE_FIELDS.index("tags")


def as_of_time(day: str | dt.date) -> dt.datetime:
    return layout.midnight_utc(parse_day(day))


# ---- archive files (pure) --------------------------------------------------------------------
def file_patterns(root: str, plan: RunPlan) -> list[str]:
    """The patterns to match for a plan: one day's patterns per arrival day, or the whole archive
    when the range is open at the start (a full rebuild, a first run)."""
    days = plan.arrival_days()
    if days is None:
        return archive.partition_glob(root)
    return [p for d in days for p in archive.partition_glob(root, d)]


def in_plan(path: str, plan: RunPlan) -> bool:
    """An archive file of one of the plan's arrival days (the whole-archive glob matches them all)."""
    day = archive.partition_day(path)
    return (archive.is_archive_file(path) and day is not None
            and (plan.arrived_from is None or day >= plan.arrived_from)
            and (plan.arrived_to is None or day <= plan.arrived_to))


class ArchiveFiles(beam.PTransform):
    """The pipeline's root → the paths of the plan's archive files, matched on the workers and
    spread (one file per unit of work downstream)."""

    def __init__(self, root: str, plan: RunPlan):
        super().__init__()
        self.root, self.plan = root, plan

    def expand(self, pbegin):
        plan = self.plan
        return (pbegin
                | "Patterns" >> beam.Create(file_patterns(self.root, plan))
                | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
                | "PlannedDays" >> beam.Filter(lambda m: in_plan(m.path, plan))
                | "Paths" >> beam.Map(lambda m: m.path)
                | "Spread" >> beam.Reshuffle())


def related_plan(plan: RunPlan) -> RunPlan:
    """The related-tags branch's read: the window's arrival days (hashtags.related.window)."""
    w = related.window(plan.as_of)
    return dataclasses.replace(plan, arrived_from=w.first_arrival, arrived_to=w.last_arrival)


TAGS = "tags"  # KeyedEventsFn's tagged output: the tag keys of every event before M (the touched tags)


class _Tally:
    """Events of one unit of work by outcome (counted in plain ints, reported once per unit)."""

    __slots__ = ("rejected", "kept", "later")

    def __init__(self):
        self.rejected = self.kept = self.later = 0


class KeyedEventsFn(beam.DoFn):
    """Archive line → (post_id, candidate) for events with event time before M, and each of its tag
    keys to the ``TAGS`` output. Parse, extract, filter and pack in one step: that is the per-event
    cost of the job, and what leaves it is keys, never captions."""

    def __init__(self, as_of: dt.datetime):
        self._as_of_us = ps.micros(as_of)
        self._valid = Metrics.counter("hashtags", "post_events_valid")
        self._rejected = Metrics.counter("hashtags", "post_events_rejected")
        self._kept = Metrics.counter(NAMESPACE, "events_before_as_of")
        self._skipped = Metrics.counter(NAMESPACE, "events_at_or_after_as_of")

    def process(self, line):
        tally = _Tally()
        yield from self.keyed(line, tally)
        self._report(tally)

    def keyed(self, line, tally: _Tally):
        f = parse_post_event_fields(line)
        if type(f) is Rejected:
            tally.rejected += 1
            return
        c = ps.candidate_from_fields(f)
        if ps.event_time_us(c) < self._as_of_us:
            tally.kept += 1
            yield f[1], c
            for key in c[_TAGS]:
                yield pvalue.TaggedOutput(TAGS, key)
        else:
            tally.later += 1

    def _report(self, tally: _Tally) -> None:
        """The unit's tally as metrics (the Dataflow UI) — the report counts in-graph instead."""
        self._valid.inc(tally.kept + tally.later)
        self._rejected.inc(tally.rejected)
        self._kept.inc(tally.kept)
        self._skipped.inc(tally.later)


class KeyedEventsOfFilesFn(KeyedEventsFn):
    """An archive file (a path or FileMetadata; local or gs://, gzip from the extension) →
    ``KeyedEventsFn`` of each non-empty line. A plain buffered ``for line in file`` (Beam's text
    record reader costs ~4 µs of Python per line). A file is one unit of work: the streaming job
    cuts the archive into files bounded by time and size."""

    def __init__(self, as_of: dt.datetime):
        super().__init__(as_of)
        self._files = Metrics.counter(NAMESPACE, "archive_files_read")

    def process(self, path):
        """Also emits, once per file, the file's counts to the ``COUNTS`` output: the report's
        figures are counted in-graph (a failed bundle's outputs are discarded with it, so they
        count each file once), since a Flex launch cannot read the job's metrics."""
        if isinstance(path, FileMetadata):
            path = path.path
        self._files.inc()
        keyed, tally = self.keyed, _Tally()
        with open_archive_file(path) as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if line:
                    yield from keyed(line, tally)
        self._report(tally)
        for name, n in (("archive_files", 1), ("events_read", tally.kept + tally.later),
                        ("events_rejected", tally.rejected), ("events_before_as_of", tally.kept)):
            yield pvalue.TaggedOutput(COUNTS, (name, n))


def open_archive_file(path: str):
    """A binary, line-iterable reader of an archive file. Gzip through Python's ``gzip`` over the raw
    stream: Beam's ``CompressedFile`` (compression AUTO) is not iterable."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw


class LatestFn(beam.CombineFn):
    """The winner of one post's candidates (``hashtags.post_state.later``, a total order, so the
    result does not depend on the split). Keyed by post_id: an accumulator is ONE candidate, and
    combiner lifting sends at most one per post and bundle through the shuffle."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, c):
        return ps.later(acc, c)

    def merge_accumulators(self, accs):
        out = None
        for acc in accs:
            out = ps.later(out, acc)
        return out

    def extract_output(self, acc):
        return acc


class ParseEvents(beam.PTransform):
    """Archive file paths (or FileMetadata) → a dict of PCollections: ``events`` (post_id, candidate)
    of every event before M, ``tags`` (the tag keys of those events, repeats included: what the
    night touched) and ``counts`` (name, n): archive files, events read / rejected / before M."""

    def __init__(self, as_of: dt.datetime):
        super().__init__()
        self.as_of = as_of

    def expand(self, files):
        parsed = files | "ParseBeforeAsOf" >> beam.ParDo(
            KeyedEventsOfFilesFn(self.as_of)).with_outputs(COUNTS, TAGS, main="events")
        return {"events": parsed.events, "tags": parsed[TAGS], "counts": parsed[COUNTS]}


class Winners(beam.PTransform):
    """Archive file paths → ``ParseEvents``' outputs, and ``winners``: (post_id, the winning
    candidate before M) of every post."""

    def __init__(self, as_of: dt.datetime):
        super().__init__()
        self.as_of = as_of

    def expand(self, files):
        parsed = files | "Parse" >> ParseEvents(self.as_of)
        return {**parsed, "winners": parsed["events"] | "LatestPerPost" >> beam.CombinePerKey(LatestFn())}
