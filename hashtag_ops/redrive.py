"""Dead-letter redrive (issue 10): read a DLQ subscription, show its dead letters grouped by reason,
republish the selected ones to their source topic exactly as they were first published.

    python -m hashtag_ops.redrive --subscription post-events-dlq-inspect            # list only
    python -m hashtag_ops.redrive --subscription post-events-dlq-inspect --reason "before the floor" [--dry-run]
    python -m hashtag_ops.redrive --subscription top-posts-dlq-inspect --older-than 2h | --all [--limit 500]

What a dead letter is (``pipelines.transforms.dead_letter``): the ORIGINAL payload bytes, the
original attributes that Pub/Sub accepts, and ``dlq_*`` attributes the dead-letter step added
(``dlq_reason``, ``dlq_source``; ``dlq_dropped_attributes`` / ``dlq_original_bytes`` /
``dlq_payload`` when it could not keep the message whole). Redriving publishes the payload with the
attributes minus every ``dlq_*`` one (dead_letter never keeps an original ``dlq_*`` attribute, so
they are all its own) to the topic of ``dlq_source`` (post-events / top-posts, names from
``hashtags.settings``). It never republishes what is not the original message: a dead letter
whose attributes were dropped or whose payload was cut or replaced by a repr, the archive's dead
letters (a re-encoded event without its attributes) and the row dead letters (``hour-counts``,
``top-posts-rows``: a record derived inside the job). Those are listed as skipped and left on the
subscription. The ordering key is not kept by a dead letter; the topics' subscriptions are unordered.

Selection: ``--reason TEXT`` (repeatable: a reason containing any of them, case-insensitive),
``--older-than 30m|2h|1d`` (dead-lettered at least that long ago; with --reason, both must hold),
``--all``. With none of them the command only lists. ``--limit N`` caps how many dead letters are
read in one run (default 1000). ``--dry-run`` shows what would be republished and changes nothing.

Size: a dead letter keeps the original payload, up to Pub/Sub's 10 MB; the subscriber comes from
``hashtag_ops.pubsub_client``, which lifts gRPC's default 4 MiB receive limit on the emulator (a
pull of ten 450 KB dead letters used to crash this command with RESOURCE_EXHAUSTED).

Acknowledgement: every message read is held (ack deadline extended to 10 min) while the command
runs; a message is acknowledged only after its publish future resolved; everything else (not
selected, skipped, failed, or all of them in a dry run) is released at the end (ack deadline 0) so
it stays on the subscription for the next run. A crash in between releases nothing: the holds
expire after 10 min and the messages are delivered again (a republished one that was not yet
acked would then be offered again: at least once, like Pub/Sub itself).

On Dataflow the job de-duplicates on ``event_id`` (``id_label``); the republished message keeps its
event_id, so a redrive soon after the rejection may be taken for a duplicate of the rejected
delivery (Dataflow documents its de-duplication window only as best effort): redrive after the fix
is deployed, then check the counts. Each run logs one ``redrive`` record (hashtag_ops.logs).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from hashtag_ops import logs
from hashtag_ops.pubsub_client import subscriber_client
from hashtags.settings import Settings

log = logging.getLogger("hashtag_ops.redrive")

# The attribute names pipelines.transforms.dead_letter writes (kept in sync by tests/unit/test_redrive.py).
DLQ_PREFIX = "dlq_"
REASON, SOURCE = "dlq_reason", "dlq_source"
DROPPED_ATTRIBUTES, ORIGINAL_BYTES, PAYLOAD_KIND = "dlq_dropped_attributes", "dlq_original_bytes", "dlq_payload"
ARCHIVE_REASON_PREFIX = "archive:"  # pipelines/archive.py: a re-encoded event, not the message

# dlq_source → the Settings field naming the topic the message was first published to.
SOURCE_TOPICS = {"post-events": "post_events_topic", "top-posts": "top_posts_topic"}

DEFAULT_LIMIT = 1000
HOLD_SECONDS = 600  # Pub/Sub's maximum ack deadline
BATCH = 500  # messages per pull and ack ids per acknowledge/modify request (well under the request limits)
EXAMPLES = 3
PREVIEW_CHARS = 160


@dataclass(frozen=True, slots=True)
class DeadLetter:
    ack_id: str
    message_id: str
    data: bytes
    attributes: Mapping[str, str]  # as received: the original ones + dlq_*
    dead_lettered_at: dt.datetime  # the DLQ message's publish time

    @property
    def reason(self) -> str:
        return self.attributes.get(REASON, "")

    @property
    def source(self) -> str:
        return self.attributes.get(SOURCE, "")

    def original_attributes(self) -> dict[str, str]:
        return {k: v for k, v in self.attributes.items() if not k.startswith(DLQ_PREFIX)}

    def not_redrivable(self) -> str | None:
        """Why this is not the original message (so it must not be republished), or None."""
        a = self.attributes
        if self.source not in SOURCE_TOPICS:
            return f"source {self.source!r} is a record derived inside the job, not a published message"
        if self.reason.startswith(ARCHIVE_REASON_PREFIX):
            return "an archive dead letter holds a re-encoded event without its attributes"
        if DROPPED_ATTRIBUTES in a:
            return f"{printable(a[DROPPED_ATTRIBUTES])} original attribute(s) were dropped when it was dead-lettered"
        if ORIGINAL_BYTES in a:
            return f"the payload was cut (the original had {printable(a[ORIGINAL_BYTES])} bytes)"
        if a.get(PAYLOAD_KIND) == "repr":
            return "the payload is a repr of a non-message element, not the original bytes"
        if not self.data and not self.original_attributes():
            return "an empty message (Pub/Sub publishes nothing without data or attributes)"
        return None


# ---- pure: grouping, selection, planning -------------------------------------------------------
_DETAIL = re.compile(r": |, got ")
# Per-message numbers inside the first part of a reason: the clock in "more than 300 s after <now>",
# sizes ("message is 70000 bytes"), list positions ("posts[12]").
_VARIABLE = ((re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"), "<time>"),
             (re.compile(r"\[\d+\]"), "[N]"),
             (re.compile(r"\b\d+ (bytes|posts|attributes)\b"), r"N \1"))


def reason_group(reason: str) -> str:
    """The reason without its per-message detail (what follows ': ' or ', got ', and the numbers
    above), so that e.g. every 'payload is not JSON: …' lands in one group."""
    head = _DETAIL.split(reason, 1)[0]
    for pattern, repl in _VARIABLE:
        head = pattern.sub(repl, head)
    return head or "(no reason)"


def printable(value: str) -> str:
    """An attribute value as it is when it is one printable line, else escaped (repr): the report is
    printed to an operator's terminal, and the values come from whoever published the message."""
    return value if value.isprintable() else repr(value)


def preview(data: bytes | str, limit: int = PREVIEW_CHARS) -> str:
    """Printable, escaped (control and bidi characters as escapes), truncated."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    cut = len(text) > limit
    shown = repr(text[:limit])
    return shown + (f"… ({len(text)} chars)" if cut else "")


@dataclass(slots=True)
class Group:
    source: str
    reason: str
    count: int = 0
    examples: list[DeadLetter] = field(default_factory=list)


def group(letters: Iterable[DeadLetter], examples: int = EXAMPLES) -> list[Group]:
    """Groups by (source, reason_group), largest first (then by name, for a stable listing)."""
    groups: dict[tuple[str, str], Group] = {}
    for d in letters:
        key = (d.source, reason_group(d.reason))
        g = groups.setdefault(key, Group(*key))
        g.count += 1
        if len(g.examples) < examples:
            g.examples.append(d)
    return sorted(groups.values(), key=lambda g: (-g.count, g.source, g.reason))


@dataclass(frozen=True, slots=True)
class Selection:
    reasons: tuple[str, ...] = ()
    older_than: dt.timedelta | None = None
    everything: bool = False

    @property
    def empty(self) -> bool:
        return not (self.reasons or self.older_than is not None or self.everything)

    def matches(self, d: DeadLetter, now: dt.datetime) -> bool:
        if self.empty:
            return False
        if self.everything:
            return True
        if self.reasons and not any(r.lower() in d.reason.lower() for r in self.reasons):
            return False
        return self.older_than is None or d.dead_lettered_at <= now - self.older_than


@dataclass(slots=True)
class Plan:
    republish: list[tuple[DeadLetter, str]] = field(default_factory=list)  # (letter, topic path)
    skipped: list[tuple[DeadLetter, str]] = field(default_factory=list)  # (letter, why)
    left: list[DeadLetter] = field(default_factory=list)  # not selected

    def release(self) -> list[DeadLetter]:
        return self.left + [d for d, _ in self.skipped]


def plan(letters: Iterable[DeadLetter], selection: Selection, now: dt.datetime,
         topic_path) -> Plan:
    """``topic_path(source) -> projects/<p>/topics/<t>``."""
    out = Plan()
    for d in letters:
        if not selection.matches(d, now):
            out.left.append(d)
        elif (why := d.not_redrivable()) is not None:
            out.skipped.append((d, why))
        else:
            out.republish.append((d, topic_path(d.source)))
    return out


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> dt.timedelta:
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"a duration like 90s, 30m, 2h or 1d, got {text!r}")
    return dt.timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


def age(d: DeadLetter, now: dt.datetime) -> str:
    seconds = max(0, int((now - d.dead_lettered_at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def render(subscription: str, letters: Sequence[DeadLetter], p: Plan, now: dt.datetime, *,
           limit_reached: bool, dry_run: bool, selection: Selection) -> str:
    """The report the command prints: groups with counts and examples, then what it will do."""
    lines = [f"{len(letters)} dead letter(s) read from {subscription}"
             + (" (the --limit was reached: more may remain)" if limit_reached else "")]
    for g in group(letters):
        lines.append(f"  {g.count:6d}  {printable(g.source) or '?'}  {preview(g.reason, 120)}")
        for d in g.examples:
            lines.append(f"          e.g. {printable(d.message_id)} ({age(d, now)} ago): {preview(d.data)}")
            if d.reason != g.reason:
                lines.append(f"               reason: {preview(d.reason, 200)}")
    if selection.empty:
        lines.append("nothing selected: pass --reason TEXT, --older-than DURATION or --all to republish")
        return "\n".join(lines)
    verb = "would republish" if dry_run else "republishing"
    per_topic = Counter(topic for _, topic in p.republish)
    lines.append(f"selected {len(p.republish) + len(p.skipped)}: {verb} {len(p.republish)}"
                 + "".join(f", {n} to {t}" for t, n in sorted(per_topic.items())))
    if p.skipped:
        why = Counter(w for _, w in p.skipped)
        lines.append(f"skipping {len(p.skipped)} that are not the original message (left on the subscription):")
        lines += [f"  {n:6d}  {w}" for w, n in why.most_common()]
    return "\n".join(lines)


# ---- I/O ---------------------------------------------------------------------------------------
def _timestamp(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromtimestamp(value.seconds + value.nanos / 1e9, dt.timezone.utc)


def _chunks(items: list, n: int = BATCH):
    for i in range(0, len(items), n):
        yield items[i:i + n]


# A synchronous pull on an empty subscription may be held until its deadline (the emulator answers
# ~1 s before it: a 30 s deadline made every run end with a ~29 s wait, measured), so the deadline is
# short; a deadline that passes with nothing delivered counts as an empty answer.
PULL_DEADLINE_SECONDS = 5.0


def pull(subscriber, subscription: str, limit: int, quiet_seconds: float = 3.0) -> list[DeadLetter]:
    """Up to ``limit`` distinct messages, each held for HOLD_SECONDS; stops when the subscription
    stays empty for ``quiet_seconds`` (a synchronous pull may return nothing even when messages
    exist, so one empty answer is not enough)."""
    import time

    from google.api_core.exceptions import DeadlineExceeded

    letters: dict[str, DeadLetter] = {}
    quiet_since = time.monotonic()
    while len(letters) < limit:
        try:
            resp = subscriber.pull(request={"subscription": subscription,
                                            "max_messages": min(BATCH, limit - len(letters))},
                                   timeout=PULL_DEADLINE_SECONDS)
        except DeadlineExceeded:  # the deadline passed with nothing to deliver: an empty answer
            resp = None
        if resp is None or not resp.received_messages:
            if time.monotonic() - quiet_since >= quiet_seconds:
                break
            time.sleep(0.2)
            continue
        quiet_since = time.monotonic()
        ack_ids = [m.ack_id for m in resp.received_messages]
        subscriber.modify_ack_deadline(request={"subscription": subscription, "ack_ids": ack_ids,
                                                "ack_deadline_seconds": HOLD_SECONDS})
        for m in resp.received_messages:
            msg = m.message
            if msg.message_id in letters:  # redelivered within this run: keep the newest lease
                letters[msg.message_id] = dataclasses.replace(letters[msg.message_id], ack_id=m.ack_id)
                continue
            letters[msg.message_id] = DeadLetter(m.ack_id, msg.message_id, bytes(msg.data),
                                                 dict(msg.attributes), _timestamp(msg.publish_time))
    return list(letters.values())


def republish(publisher, items: Sequence[tuple[DeadLetter, str]], progress=None,
              timeout: float = 60.0) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """Publish each letter's original payload and attributes; (published, [(failed, error)]). A
    letter counts as published only once its publish future resolved."""
    futures = [(d, publisher.publish(topic, d.data, **d.original_attributes())) for d, topic in items]
    done, failed = [], []
    for d, future in futures:
        try:
            future.result(timeout=timeout)
            done.append(d)
        except Exception as e:  # a failed publish stays on the DLQ, released below
            failed.append((d, f"{type(e).__name__}: {e}"))
        if progress is not None:
            progress.update(1)
    return done, failed


def acknowledge(subscriber, subscription: str, letters: Sequence[DeadLetter]) -> None:
    for chunk in _chunks([d.ack_id for d in letters]):
        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": chunk})


def release(subscriber, subscription: str, letters: Sequence[DeadLetter]) -> None:
    """Give the messages back now (ack deadline 0) instead of when the hold expires."""
    for chunk in _chunks([d.ack_id for d in letters]):
        subscriber.modify_ack_deadline(request={"subscription": subscription, "ack_ids": chunk,
                                                "ack_deadline_seconds": 0})


@dataclass(frozen=True, slots=True)
class Outcome:
    read: int
    selected: int
    republished: int
    skipped: int
    failed: int
    report: str


def redrive(subscription: str, selection: Selection, *, settings: Settings, limit: int = DEFAULT_LIMIT,
            dry_run: bool = False, subscriber=None, publisher=None, out=sys.stdout,
            now: dt.datetime | None = None, quiet_seconds: float = 3.0) -> Outcome:
    """One run: pull, print the grouped report, republish the selection, ack what was republished,
    release the rest. ``subscription`` is a full path (see :func:`subscription_path`)."""
    from google.cloud import pubsub_v1
    from tqdm import tqdm

    own_subscriber = subscriber is None
    subscriber = subscriber or subscriber_client()  # no 4 MiB receive limit on the emulator either
    project = subscription.split("/")[1]
    topic_path = lambda source: f"projects/{project}/topics/{getattr(settings, SOURCE_TOPICS[source])}"  # noqa: E731
    try:
        letters = pull(subscriber, subscription, limit, quiet_seconds)
        now = now or dt.datetime.now(dt.timezone.utc)
        p = plan(letters, selection, now, topic_path)
        report = render(subscription, letters, p, now, limit_reached=len(letters) >= limit,
                        dry_run=dry_run, selection=selection)
        print(report, file=out, flush=True)
        done: list[DeadLetter] = []
        failed: list[tuple[DeadLetter, str]] = []
        if p.republish and not dry_run:
            publisher = publisher or pubsub_v1.PublisherClient()
            with tqdm(total=len(p.republish), unit="msg", desc="republish", file=sys.stderr,
                      disable=None) as bar:
                done, failed = republish(publisher, p.republish, bar)
            acknowledge(subscriber, subscription, done)
            for d, error in failed[:EXAMPLES]:
                print(f"publish failed for {d.message_id}: {preview(error, 200)}", file=out)
        release(subscriber, subscription, p.release() + [d for d, _ in failed]
                + ([d for d, _ in p.republish] if dry_run else []))
    finally:
        if own_subscriber:
            subscriber.close()
    outcome = Outcome(len(letters), len(p.republish) + len(p.skipped), len(done), len(p.skipped),
                      len(failed), report)
    logs.log_event(log, logs.REDRIVE, f"redrive {subscription}: republished {len(done)} of {len(letters)} read",
                   level=logging.WARNING if failed else logging.INFO, subscription=subscription,
                   dry_run=dry_run, read=outcome.read, selected=outcome.selected,
                   republished=outcome.republished, skipped=outcome.skipped, failed=outcome.failed,
                   reasons=list(selection.reasons), older_than_seconds=(
                       selection.older_than.total_seconds() if selection.older_than else None),
                   everything=selection.everything)
    return outcome


def subscription_path(name: str, settings: Settings) -> str:
    return name if name.startswith("projects/") else settings.subscription_path(name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hashtag_ops.redrive", description=__doc__.splitlines()[0])
    p.add_argument("--subscription", required=True,
                   help="the DLQ subscription: a name (in HASHTAGS_PROJECT) or projects/<p>/subscriptions/<s>")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--all", action="store_true", help="select every dead letter read")
    pick.add_argument("--reason", action="append", default=[], metavar="TEXT",
                      help="select reasons containing TEXT (case-insensitive; repeatable: any)")
    p.add_argument("--older-than", type=parse_duration, default=None, metavar="DURATION",
                   help="select dead letters older than DURATION (90s, 30m, 2h, 1d)")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="read at most N dead letters")
    p.add_argument("--dry-run", action="store_true", help="show what would be republished, change nothing")
    args = p.parse_args(argv)
    if args.all and args.older_than is not None:
        p.error("--all selects everything: do not combine it with --older-than")
    if args.limit < 1:
        p.error("--limit must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup("redrive", stream=sys.stderr)  # stdout is the report
    settings = Settings.from_env(os.environ)
    selection = Selection(tuple(args.reason), args.older_than, args.all)
    outcome = redrive(subscription_path(args.subscription, settings), selection, settings=settings,
                      limit=args.limit, dry_run=args.dry_run)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
