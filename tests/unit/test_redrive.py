"""Dead-letter redrive without Pub/Sub: dead letters built by the real dead-letter step
(pipelines.transforms.dead_letter over real parse rejects), grouped, selected and planned; the run
against in-memory subscriber/publisher doubles acks only what a resolved publish future covers."""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
from concurrent.futures import Future

import pytest

from hashtag_ops import logs, redrive as rd
from hashtags.settings import Settings
from pipelines import transforms
from pipelines.transforms import ParsePostEventsFn, ParseTopPostsFn

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
SETTINGS = Settings(project="p-redrive")
ATTRS = {"event_time": "2026-12-01T10:00:00Z", "event_id": "e1", "origin": "api"}


def rejected(fn, data: bytes, attributes=None):
    """The dead letter the job's parse step emits for ``data`` (exactly one, or the test fails)."""
    from apache_beam.io.gcp.pubsub import PubsubMessage

    out = list(fn.process(PubsubMessage(data, attributes)))
    assert len(out) == 1 and out[0].tag == transforms.DEAD, out
    return out[0].value


def letter(message, message_id="m1", at=NOW - dt.timedelta(hours=1), ack_id=None) -> rd.DeadLetter:
    return rd.DeadLetter(ack_id or "ack-" + message_id, message_id, message.data, dict(message.attributes), at)


def not_json(n: int = 0) -> rd.DeadLetter:
    return letter(rejected(ParsePostEventsFn(), b"{not json" + b"x" * n, ATTRS), f"nj{n}")


def test_the_dead_letter_attribute_names_are_the_dead_letter_steps():
    assert (rd.REASON, rd.SOURCE, rd.DROPPED_ATTRIBUTES, rd.ORIGINAL_BYTES, rd.PAYLOAD_KIND) == (
        transforms.REASON, transforms.SOURCE, transforms.DROPPED_ATTRIBUTES, transforms.ORIGINAL_BYTES,
        transforms.PAYLOAD_KIND)
    assert all(name.startswith(rd.DLQ_PREFIX) for name in (transforms.REASON, transforms.SOURCE,
                                                             transforms.DROPPED_ATTRIBUTES,
                                                             transforms.ORIGINAL_BYTES, transforms.PAYLOAD_KIND))


def test_a_rejected_event_redrives_with_its_original_payload_and_attributes():
    d = not_json()
    assert d.source == "post-events" and d.reason.startswith("payload is not JSON: ")
    assert d.data == b"{not json" and d.original_attributes() == ATTRS
    assert d.not_redrivable() is None
    top = letter(rejected(ParseTopPostsFn(), b'{"hashtag": "love"}'), "t1")
    assert top.source == "top-posts" and top.not_redrivable() is None and top.original_attributes() == {}


def test_incomplete_or_derived_dead_letters_are_never_redriven():
    many = {f"a{i}": "v" for i in range(150)}
    dropped = letter(rejected(ParsePostEventsFn(), b"{}", many), "dropped")
    assert "original attribute(s) were dropped" in dropped.not_redrivable()
    big = transforms.dead_letter(b"x" * (transforms.MAX_DEAD_LETTER_DATA_BYTES + 1), None, "too big", "post-events")
    assert "the payload was cut" in letter(big, "big").not_redrivable()
    reprd = transforms.dead_letter(object(), None, "odd element", "post-events")
    assert "repr" in letter(reprd, "repr").not_redrivable()
    row = transforms.dead_letter(b'{"key": "x"}', None, "row not built: ValueError: x", "hour-counts")
    assert "derived inside the job" in letter(row, "row").not_redrivable()
    archive = transforms.dead_letter(b"{}", {}, "archive: line not encodable: X: y", "post-events")
    assert "archive dead letter" in letter(archive, "arch").not_redrivable()


def test_reasons_group_without_their_detail_largest_first():
    future = rejected(ParsePostEventsFn(), json.dumps({
        "event": "published", "post_id": "p", "user_id": "u", "caption": "#a", "image_url": "https://i/x.jpg",
        "event_time": "2999-01-01T00:00:00Z"}).encode())
    later = rejected(ParsePostEventsFn(), future.data)  # the same event, rejected at another clock reading
    letters = [not_json(0), letter(future, "f1"), not_json(1), not_json(2), letter(later, "f2")]
    groups = rd.group(letters, examples=2)
    assert [(g.source, g.reason, g.count, [d.message_id for d in g.examples]) for g in groups] == [
        ("post-events", "payload is not JSON", 3, ["nj0", "nj1"]),
        ("post-events", "field 'event_time' is in the future, more than 300 s after <time>", 2, ["f1", "f2"])]
    assert rd.reason_group("posts[12]: duplicate post_id 'x'") == "posts[N]"
    assert rd.reason_group("post-events message is 70000 bytes, over the 65536-byte limit") == \
        "post-events message is N bytes, over the 65536-byte limit"
    assert rd.reason_group("field 'image_url' must be an https URL, got 'http://x'") == \
        "field 'image_url' must be an https URL"
    assert rd.reason_group("") == "(no reason)"


def test_selection_by_reason_age_or_all():
    old, new = not_json(), letter(rejected(ParsePostEventsFn(), b"[1]"), "arr", at=NOW - dt.timedelta(minutes=5))
    assert new.reason == "payload is JSON list, expected an object"
    by_reason = rd.Selection(reasons=("NOT JSON", "nothing like it"))
    assert (by_reason.matches(old, NOW), by_reason.matches(new, NOW)) == (True, False)
    by_age = rd.Selection(older_than=dt.timedelta(minutes=30))
    assert (by_age.matches(old, NOW), by_age.matches(new, NOW)) == (True, False)
    both = rd.Selection(reasons=("expected an object",), older_than=dt.timedelta(minutes=30))
    assert (both.matches(old, NOW), both.matches(new, NOW)) == (False, False)
    assert rd.Selection(everything=True).matches(new, NOW)
    assert rd.Selection().empty and not rd.Selection().matches(old, NOW)


def test_plan_sends_each_source_to_its_topic_and_skips_what_is_not_the_original():
    top = letter(rejected(ParseTopPostsFn(), b"{}"), "t1")
    row = letter(transforms.dead_letter(b"{}", None, "row not built: E: e", "top-posts-rows"), "row")
    p = rd.plan([not_json(), top, row], rd.Selection(everything=True), NOW,
                lambda source: f"projects/p/topics/{getattr(SETTINGS, rd.SOURCE_TOPICS[source])}")
    assert [(d.message_id, t) for d, t in p.republish] == [("nj0", "projects/p/topics/post-events"),
                                                          ("t1", "projects/p/topics/top-posts")]
    assert [d.message_id for d, _ in p.skipped] == ["row"] and p.left == []
    none = rd.plan([not_json()], rd.Selection(), NOW, lambda s: "x")
    assert none.republish == [] and [d.message_id for d in none.release()] == ["nj0"]


def test_preview_escapes_and_truncates():
    assert rd.preview(b"ok \x1b[31mred\x1b[0m \xe2\x80\xae") == "'ok \\x1b[31mred\\x1b[0m \\u202e'"
    assert rd.preview("é" * 200, 10) == repr("é" * 10) + "… (200 chars)"
    assert rd.preview(b"\xff\xfe") == repr("\\xff\\xfe")


@pytest.mark.parametrize("text, delta", [("90s", dt.timedelta(seconds=90)), ("30m", dt.timedelta(minutes=30)),
                                         ("2h", dt.timedelta(hours=2)), ("1.5d", dt.timedelta(hours=36))])
def test_parse_duration(text, delta):
    assert rd.parse_duration(text) == delta


def test_parse_duration_rejects_other_text():
    with pytest.raises(Exception):
        rd.parse_duration("2 weeks")


# ---- the run, against doubles --------------------------------------------------------------
class Received:
    def __init__(self, d: rd.DeadLetter):
        self.ack_id = d.ack_id
        self.message = type("M", (), {"message_id": d.message_id, "data": d.data, "attributes": d.attributes,
                                      "publish_time": d.dead_lettered_at})()


class FakeSubscriber:
    def __init__(self, letters):
        self.queue = [Received(d) for d in letters]
        self.acked: list[str] = []
        self.deadlines: list[tuple[str, int]] = []

    def pull(self, request, timeout=None):
        batch, self.queue = self.queue[:request["max_messages"]], self.queue[request["max_messages"]:]
        return type("R", (), {"received_messages": batch})()

    def acknowledge(self, request):
        self.acked += request["ack_ids"]

    def modify_ack_deadline(self, request):
        self.deadlines += [(a, request["ack_deadline_seconds"]) for a in request["ack_ids"]]

    def close(self):
        pass


class FakePublisher:
    def __init__(self, fail_ids=()):
        self.published: list[tuple[str, bytes, dict]] = []
        self.fail_ids = set(fail_ids)

    def publish(self, topic, data, **attributes):
        f = Future()
        if attributes.get("event_id") in self.fail_ids:
            f.set_exception(RuntimeError("publish refused"))
        else:
            self.published.append((topic, data, attributes))
            f.set_result("id")
        return f


def run(letters, selection, publisher=None, dry_run=False, limit=100):
    sub = FakeSubscriber(letters)
    out = io.StringIO()
    outcome = rd.redrive("projects/p-redrive/subscriptions/post-events-dlq-inspect", selection, settings=SETTINGS,
                         limit=limit, dry_run=dry_run, subscriber=sub, publisher=publisher or FakePublisher(),
                         out=out, now=NOW, quiet_seconds=0.0)
    return outcome, sub, out.getvalue()


def two_events():
    a = letter(rejected(ParsePostEventsFn(), b"{bad", {**ATTRS, "event_id": "ok"}), "a")
    b = letter(rejected(ParsePostEventsFn(), b"{worse", {**ATTRS, "event_id": "fails"}), "b")
    return a, b


def test_acks_only_what_was_republished_and_releases_the_rest(caplog):
    a, b = two_events()
    row = letter(transforms.dead_letter(b"{}", None, "row not built: E: e", "hour-counts"), "row")
    other = letter(rejected(ParsePostEventsFn(), b"[]", ATTRS), "other")
    pub = FakePublisher(fail_ids={"fails"})
    with caplog.at_level(logging.INFO, logger="hashtag_ops.redrive"):
        outcome, sub, report = run([a, b, row, other], rd.Selection(reasons=("not JSON", "row not built")), pub)
    assert pub.published == [("projects/p-redrive/topics/post-events", b"{bad", {**ATTRS, "event_id": "ok"})]
    assert sub.acked == ["ack-a"]
    released = {a for a, s in sub.deadlines if s == 0}
    assert released == {"ack-b", "ack-row", "ack-other"}
    assert {a for a, s in sub.deadlines if s == rd.HOLD_SECONDS} == {"ack-a", "ack-b", "ack-row", "ack-other"}
    assert (outcome.read, outcome.selected, outcome.republished, outcome.skipped, outcome.failed) == (4, 3, 1, 1, 1)
    assert "4 dead letter(s) read" in report and "publish failed for b" in report
    record = [r for r in caplog.records if getattr(r, "json_fields", {}).get("event") == logs.REDRIVE]
    assert len(record) == 1 and record[0].levelname == "WARNING"
    assert {k: record[0].json_fields[k] for k in ("read", "selected", "republished", "skipped", "failed")} == {
        "read": 4, "selected": 3, "republished": 1, "skipped": 1, "failed": 1}


def test_dry_run_and_no_selection_change_nothing():
    a, b = two_events()
    for selection, dry in ((rd.Selection(everything=True), True), (rd.Selection(), False)):
        pub = FakePublisher()
        outcome, sub, report = run([a, b], selection, pub, dry_run=dry)
        assert pub.published == [] and sub.acked == []
        assert {x for x, s in sub.deadlines if s == 0} == {"ack-a", "ack-b"}
        assert outcome.republished == 0
    assert "nothing selected" in report


def test_the_limit_caps_what_is_read():
    letters = [not_json(i) for i in range(5)]
    outcome, sub, report = run(letters, rd.Selection(everything=True), limit=3)
    assert outcome.read == 3 and outcome.republished == 3 and len(sub.queue) == 2
    assert "the --limit was reached" in report


class DeadlineFirstSubscriber(FakeSubscriber):
    """Real Pub/Sub and the emulator may hold an empty pull until its deadline, which the client
    raises as DeadlineExceeded: the first pull does that, then the letters arrive."""

    def __init__(self, letters):
        super().__init__(letters)
        self.timeouts: list[float | None] = []

    def pull(self, request, timeout=None):
        from google.api_core.exceptions import DeadlineExceeded

        self.timeouts.append(timeout)
        if len(self.timeouts) == 1:
            raise DeadlineExceeded("held until the deadline")
        return super().pull(request, timeout)


def test_a_pull_that_reaches_its_deadline_is_an_empty_answer_and_deadlines_are_short():
    sub = DeadlineFirstSubscriber([not_json(i) for i in range(3)])
    letters = rd.pull(sub, "projects/p/subscriptions/s", limit=100, quiet_seconds=0.3)
    assert [d.message_id for d in letters] == ["nj0", "nj1", "nj2"]
    assert len(sub.timeouts) >= 3 and set(sub.timeouts) == {rd.PULL_DEADLINE_SECONDS}
    assert rd.PULL_DEADLINE_SECONDS <= 5


def test_the_command_line():
    args = rd.parse_args(["--subscription", "s", "--reason", "a", "--reason", "b", "--older-than", "2h",
                          "--limit", "7", "--dry-run"])
    assert (args.reason, args.older_than, args.limit, args.dry_run, args.all) == (
        ["a", "b"], dt.timedelta(hours=2), 7, True, False)
    with pytest.raises(SystemExit):
        rd.parse_args(["--subscription", "s", "--all", "--reason", "a"])
    assert rd.subscription_path("dlq", SETTINGS) == "projects/p-redrive/subscriptions/dlq"
    assert rd.subscription_path("projects/x/subscriptions/y", SETTINGS) == "projects/x/subscriptions/y"
