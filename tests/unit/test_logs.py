"""hashtag_ops.logs: the format choice, the JSON and text forms of one record, and the job records
(the recount's run summary from a real drift report, the streaming job's start record)."""
from __future__ import annotations

import datetime as dt
import io
import json
import logging

import pytest
from hypothesis import given, settings, strategies as st

from hashtag_ops import logs
from hashtags import planning
from pipelines import drift, recount_launch, streaming_main


@pytest.fixture
def capture():
    """A JSON handler (the one setup() installs on Google Cloud) on a named logger, read back as dicts."""
    created = []

    def attach(name: str, json_mode: bool = True):
        stream = io.StringIO()
        logger = logging.getLogger(name)
        handler = logs.json_handler("test", stream, "proj") if json_mode else logs.text_handler(stream)
        created.append((logger, handler, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if json_mode:
            return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
        return lambda: stream.getvalue()

    yield attach
    for logger, handler, level, propagate in created:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.mark.parametrize("env, expected", [
    ({}, False), ({"HASHTAGS_LOG_FORMAT": "json"}, True), ({"K_SERVICE": "hashtags-web"}, True),
    ({"CLOUD_RUN_JOB": "j"}, True), ({"COMPOSER_ENVIRONMENT": "c"}, True),
    ({"FLEX_TEMPLATE_PYTHON_PY_FILE": "/template/pipelines/streaming_main.py"}, True),
    ({"K_SERVICE": "hashtags-web", "HASHTAGS_LOG_FORMAT": "text"}, False), ({"HASHTAGS_LOG_FORMAT": "JSON"}, True)])
def test_json_on_google_cloud_or_when_asked(env, expected):
    assert logs.wants_json(env) is expected


def test_setup_replaces_the_root_handlers_and_writes_json_lines():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    stream = io.StringIO()
    try:
        handler = logs.setup("svc", env={"K_SERVICE": "web", "HASHTAGS_PROJECT": "p1"}, stream=stream)
        assert root.handlers == [handler]
        logs.log_event(logging.getLogger("some.module"), logs.MODERATION, tag="love", action="hide")
        logging.getLogger("apache_beam").info("not shown: noisy loggers are at WARNING")
        (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
        assert {k: line[k] for k in ("event", "tag", "action", "message", "severity")} == {
            "event": "moderation", "tag": "love", "action": "hide", "message": "moderation", "severity": "INFO"}
        assert line["logging.googleapis.com/labels"] == {"python_logger": "some.module", "service": "svc"}
        assert line["logging.googleapis.com/sourceLocation"]["function"] == \
            "test_setup_replaces_the_root_handlers_and_writes_json_lines"  # the caller, not log_event
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def test_text_form_appends_the_fields_and_keeps_tracebacks_below(capture):
    read = capture("t.text", json_mode=False)
    logger = logging.getLogger("t.text")
    logs.log_event(logger, logs.REDRIVE, "redrive done", read=3, subscription="projects/p/subscriptions/d",
                   reasons=["not JSON"], note="two words")
    try:
        raise ValueError("x")
    except ValueError:
        logger.exception("failed", extra={"json_fields": {"event": "e"}})
    first, second = read().split("\n", 1)
    assert first.endswith('INFO t.text: redrive done | event=redrive read=3 '
                          'subscription=projects/p/subscriptions/d reasons=["not JSON"] note="two words"')
    assert second.splitlines()[0].endswith("ERROR t.text: failed | event=e")
    assert "Traceback" in second and second.rstrip().endswith("ValueError: x")


def report(threshold=None):
    rows = [drift.TagDrift("love", 12, 10), drift.TagDrift("cat", 3, 3), drift.TagDrift("dog", 0, 1)]
    return drift.build_report(drift.summarize(rows), as_of="2026-11-23T00:00:00Z", table="hashtags",
                              dry_run=False, threshold=threshold)


def test_recount_run_fields_from_a_real_report():
    f = logs.recount_run_fields(report(), mode="nightly", job="hashtags-recount-20261123-nightly")
    assert {k: f[k] for k in ("status", "mode", "as_of", "tags_touched", "drifted_tags", "job", "dry_run")} == {
        "status": "succeeded", "mode": "nightly", "as_of": "2026-11-23T00:00:00Z", "tags_touched": 3,
        "drifted_tags": 2, "job": "hashtags-recount-20261123-nightly", "dry_run": False}
    assert f["drift_ratio"] == pytest.approx(3 / 14) and f["worst"] == [{"tag": "love", "diff": 2},
                                                                        {"tag": "dog", "diff": -1}]
    assert logs.recount_run_fields(report(threshold=0.1), mode="nightly", job=None)["status"] == "drift"
    assert logs.recount_run_fields(report(), mode="nightly", job=None, threshold=0.1)["status"] == "drift"
    failed = logs.recount_run_fields(None, mode="reapply", job=None, as_of="2026-11-23T00:00:00Z")
    assert (failed["status"], failed["as_of"], failed["tags_touched"], failed["drift_ratio"]) == (
        "failed", "2026-11-23T00:00:00Z", None, None)


def outcome(code, rep, message="drift as_of=…"):
    plan = planning.plan_nightly(dt.date(2026, 11, 23), None)
    return recount_launch.RecountOutcome(code, dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc), rep, [], message, plan)


def test_the_recount_main_logs_one_run_summary_record(capture):
    read = capture("pipelines.recount")
    rep = report(threshold=0.1)
    fields = recount_launch.log_run_summary(outcome(recount_launch.EXIT_DRIFT, rep, drift.summary_line(rep)), "nightly")
    recount_launch.log_run_summary(outcome(recount_launch.EXIT_FAILED, None, "pipeline failed: boom"), "nightly")
    assert recount_launch.log_run_summary(outcome(recount_launch.EXIT_OK, None, "template launch"), "nightly") is None
    drifted, failed = read()
    assert drifted["event"] == failed["event"] == "recount_run"
    assert {k: drifted[k] for k in ("status", "mode", "as_of", "tags_touched", "drifted_tags", "job")} == {
        "status": "drift", "mode": "nightly", "as_of": "2026-11-23T00:00:00Z", "tags_touched": 3,
        "drifted_tags": 2, "job": planning.job_name(planning.plan_nightly(dt.date(2026, 11, 23), None))}
    assert drifted["drift_ratio"] == pytest.approx(3 / 14) and drifted["severity"] == "WARNING"
    assert drifted["message"] == "recount run drift: " + drift.summary_line(rep) and fields["status"] == "drift"
    assert (failed["status"], failed["severity"], failed["tags_touched"]) == ("failed", "ERROR", None)
    assert failed["message"] == "recount run failed: pipeline failed: boom"
    assert failed["as_of"] == "2026-11-23T00:00:00Z"


def test_the_streaming_main_start_record_fields():
    class LocalResult:
        pass

    f = streaming_main.start_fields(["--runner=BundleBasedDirectRunner", "--project=p-x", "--count_generation=3",
                                     "--post_events_subscription=projects/p-x/subscriptions/s", "--read=post-events"],
                                    LocalResult())
    assert f == {"runner": "LocalResult", "job_name": None, "job_id": None, "project": "p-x", "count_generation": 3,
                 "read": "post-events", "post_events_subscription": "projects/p-x/subscriptions/s",
                 "top_posts_subscription": None, "bigtable": "local/hashtags", "bigtable_app_profile": None,
                 "event_time_floor": "2000-01-01T00:00:00Z", "max_future_skew_seconds": 300}


# ---- the JSON handler's filter: the library's attributes, without inference where it is useless ----
FILTER_ATTRIBUTES = ("_resource", "_trace", "_span_id", "_trace_sampled", "_http_request", "_source_location",
                     "_labels", "_trace_str", "_span_id_str", "_trace_sampled_str", "_http_request_str",
                     "_source_location_str", "_labels_str")


def _record(name: str, extra: dict, msg: str = "GET /tags/love 200") -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, logging.INFO, "/srv/app/serving/access_log.py", 117, msg, (),
                                              None, "_log", {"json_fields": {"event": "e"}, **extra})


def _filtered_both_ways(name: str, extra: dict):
    """The same record through the library's CloudLoggingFilter and through json_handler's filter,
    and each copy's whole JSON line from the library's StructuredLogHandler.format."""
    from google.cloud.logging_v2.handlers import StructuredLogHandler
    from google.cloud.logging_v2.handlers.handlers import CloudLoggingFilter

    ours = logs.json_handler("web", io.StringIO(), "proj")
    library = StructuredLogHandler(stream=io.StringIO(), project_id="proj", labels={"service": "web"})
    assert type(ours.filters[0]) is not CloudLoggingFilter and type(library.filters[0]) is CloudLoggingFilter
    mine, theirs = _record(name, extra), _record(name, extra)
    assert ours.filter(mine) and library.filter(theirs)
    return mine, theirs, ours.format(mine), library.format(theirs)


REQUEST = {"requestMethod": "GET", "requestUrl": "https://h.example/tags/東京?x=1", "status": 200,
           "latency": "0.000012s", "userAgent": 'probe "1"', "remoteIp": "203.0.113.9"}


@pytest.mark.parametrize("extra", [
    {"http_request": REQUEST, "trace": "projects/proj/traces/abc", "span_id": "0000000000000001",
     "trace_sampled": True},
    {"http_request": REQUEST, "trace": None, "span_id": None, "trace_sampled": False},
    {"http_request": {}, "trace": "", "span_id": "", "trace_sampled": None},
    # not every request field, or a labels / source_location / resource extra: the library's own filter
    {"http_request": REQUEST, "trace": "projects/proj/traces/abc"},
    {"http_request": REQUEST, "trace": None, "span_id": None, "trace_sampled": False, "labels": {"k": "v"}},
    {"http_request": REQUEST, "trace": None, "span_id": None, "trace_sampled": False,
     "source_location": {"file": "x.py"}},
    {}])
def test_the_json_handlers_filter_sets_what_the_librarys_filter_sets(extra):
    mine, theirs, my_line, their_line = _filtered_both_ways("serving.access", extra)
    assert {a: getattr(mine, a) for a in FILTER_ATTRIBUTES} == {a: getattr(theirs, a) for a in FILTER_ATTRIBUTES}
    assert my_line == their_line


def test_a_record_with_every_request_field_is_not_inferred_from_the_environment(monkeypatch):
    from google.cloud.logging_v2.handlers import handlers

    calls = []
    monkeypatch.setattr(handlers, "get_request_data", lambda: calls.append(1) or (None, None, None, False))
    full = {"http_request": REQUEST, "trace": None, "span_id": None, "trace_sampled": False}
    _filtered_both_ways("serving.access", full)
    assert calls == [1]  # the library's filter only
    _filtered_both_ways("serving.access", {"http_request": REQUEST})
    assert calls == [1, 1, 1]  # a partial record: both infer


_text = st.text(max_size=30)


@settings(max_examples=60, deadline=None)
@given(http=st.dictionaries(st.sampled_from(sorted(REQUEST)), st.one_of(st.none(), st.integers(), _text), max_size=6),
       trace=st.one_of(st.none(), _text), span=st.one_of(st.none(), _text), sampled=st.one_of(st.none(), st.booleans()),
       name=st.sampled_from(["serving.access", "", "pipelines.recount", "x" * 40]))
def test_any_request_record_gives_the_librarys_line(http, trace, span, sampled, name):
    extra = {"http_request": http, "trace": trace, "span_id": span, "trace_sampled": sampled}
    mine, theirs, my_line, their_line = _filtered_both_ways(name, extra)
    # (the line itself need not parse: the library writes the trace and span id unescaped into its
    # template; the request log's come from the library's header parsers, hex and word characters)
    assert {a: getattr(mine, a) for a in FILTER_ATTRIBUTES} == {a: getattr(theirs, a) for a in FILTER_ATTRIBUTES}
    assert my_line == their_line and json.loads(mine._http_request_str) == http


def test_log_event_records_the_location_logger_log_would(capture):
    """log_event finds its caller's frame itself (not Logger.findCaller): the same file, line and
    function as a plain logger call on the same line, directly and through log_recount_run
    (stacklevel=2), and through a LoggerAdapter (Logger.log's path)."""
    read = capture("t.site")
    logger = logging.getLogger("t.site")
    adapter = logging.LoggerAdapter(logger, {})
    fields = logs.recount_run_fields(None, mode="nightly", job=None)
    logs.log_event(logger, logs.REDRIVE, "direct"); logger.info("plain")  # noqa: E702
    logs.log_recount_run(logger, fields); logger.info("plain")  # noqa: E702
    logs.log_event(adapter, logs.MODERATION, "adapted", tag="t"); logger.info("plain")  # noqa: E702
    direct, plain1, recount, plain2, adapted, plain3 = read()
    assert direct["logging.googleapis.com/sourceLocation"] == plain1["logging.googleapis.com/sourceLocation"]
    assert recount["logging.googleapis.com/sourceLocation"] == plain2["logging.googleapis.com/sourceLocation"]
    assert adapted["logging.googleapis.com/sourceLocation"] == plain3["logging.googleapis.com/sourceLocation"]
    assert direct["logging.googleapis.com/sourceLocation"]["function"] == \
        "test_log_event_records_the_location_logger_log_would"
    assert (direct["event"], recount["event"], recount["severity"], adapted["message"]) == (
        "redrive", "recount_run", "ERROR", "adapted")  # (a 3.11 LoggerAdapter drops extra, as before)


def test_the_text_forms_timestamp_is_the_stdlib_formatters(monkeypatch):
    """TextFormatter's stamp is logging.Formatter's for records within a second, across a boundary,
    and back in time."""
    ours, stdlib = logs.TextFormatter(), logging.Formatter(logs.TEXT_FORMAT)
    stamps = set()
    for now in (1_764_590_000.0, 1_764_590_000.9995, 1_764_590_001.0, 1_764_590_001.5, 1_764_589_999.123,
                1_764_590_001.999):
        monkeypatch.setattr("time.time", lambda now=now: now)  # what LogRecord reads (Python 3.11)
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", (), None)
        stamps.add(ours.formatTime(record))
        assert ours.formatTime(record) == stdlib.formatTime(record)
        assert ours.format(record) == stdlib.format(record)
        assert ours.formatTime(record, "%Y %H") == stdlib.formatTime(record, "%Y %H")
    assert len(stamps) == 6
