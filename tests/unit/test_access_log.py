"""The web request log (issue 10): one JSON line per request, read back as JSON, through the real app
(create_app over the in-memory store) and google-cloud-logging's StructuredLogHandler."""
from __future__ import annotations

import inspect
import io
import itertools
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hashtag_ops import logs
from hashtags.settings import Settings
from serving import create_app
from serving import access_log
from serving.access_log import LOGGER, AccessLog, tag_of
from tests.unit.serving_fakes import FakeStore, doc

PROJECT = "test-hashtags"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def store():
    return FakeStore({"love": doc()})


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(store, clock):
    return create_app(Settings(project=PROJECT), store, clock=clock)


@pytest.fixture
def lines():
    """Every JSON line the request logger writes during the test (the handler setup() installs)."""
    stream = io.StringIO()
    handler = logs.json_handler("web", stream, PROJECT)
    old = (LOGGER.level, LOGGER.propagate)
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False

    def read() -> list[dict]:
        # split on "\n" only, as Cloud Logging's agents read stdout (str.splitlines also splits on
        # U+0085/U+2028…, which JSON strings may hold unescaped)
        return [json.loads(line) for line in stream.getvalue().split("\n") if line]

    yield read
    LOGGER.removeHandler(handler)
    LOGGER.setLevel(old[0])
    LOGGER.propagate = old[1]


def test_one_line_per_request_with_status_latency_cache_tag_and_trace(app, lines, clock):
    client = app.test_client()
    r1 = client.get("/tags/love", headers={"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1",
                                           "User-Agent": "probe/1.0"})
    clock.now += 10
    r2 = client.get("/api/tags/love", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00"})
    assert (r1.status_code, r1.headers["X-Cache"], r2.headers["X-Cache"]) == (200, "miss", "miss")
    first, second = lines()
    assert first["event"] == second["event"] == "http_request"
    assert first["severity"] == "INFO" and first["message"] == "GET /tags/love 200"
    http = first["httpRequest"]
    assert (http["requestMethod"], http["status"], http["userAgent"], http["remoteIp"]) == (
        "GET", 200, "probe/1.0", "127.0.0.1")
    assert http["requestUrl"] == "http://localhost/tags/love"
    assert http["latency"].endswith("s") and float(http["latency"][:-1]) > 0
    assert (first["cache"], first["tag"]) == ("miss", "love")
    assert first["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    assert first["logging.googleapis.com/spanId"] == "0000000000000001"
    assert first["logging.googleapis.com/trace_sampled"] is True
    assert (second["cache"], second["tag"], second["httpRequest"]["status"]) == ("miss", "love", 200)
    assert second["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    assert second["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert second["logging.googleapis.com/trace_sampled"] is False
    assert first["logging.googleapis.com/labels"]["service"] == "web"


def _log_call_line() -> int:
    """The line of the log_event call in AccessLog._log: the record's sourceLocation (the caller of
    log_event, as Logger.findCaller gives it)."""
    lines, first = inspect.getsourcelines(AccessLog._log)
    (offset,) = [i for i, line in enumerate(lines) if "log_event(" in line]
    return first + offset


def test_the_json_line_is_exactly_these_fields_for_two_misses_with_either_trace_header(
        app, lines, monkeypatch, clock):
    """The whole parsed line, value by value (the form issue 10's metrics and Cloud Logging read;
    the same dict the line parsed to before the request log was made cheaper, 2026-12-01)."""
    ticks = itertools.count()
    monkeypatch.setattr(access_log, "perf_counter", lambda: 0.25 * next(ticks))  # each request: 0.25 s
    client = app.test_client()
    client.get("/tags/love", headers={"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1", "User-Agent": "probe/1.0",
                                      "X-Forwarded-For": "203.0.113.9, 10.0.0.1"})
    clock.now += 10  # expired: the second request is a miss too (hits get no line: next test)
    client.get("/api/tags/love?x=1", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
                                              "X-Forwarded-Proto": "https", "User-Agent": "probe/2.0"})
    client.get("/healthz", headers={"User-Agent": "probe/3.0"})
    common = {
        "event": "http_request", "severity": "INFO",
        "logging.googleapis.com/labels": {"python_logger": "serving.access", "service": "web"},
        "logging.googleapis.com/trace": f"projects/{PROJECT}/traces/{TRACE_ID}",
        "logging.googleapis.com/trace_sampled": True,
        "logging.googleapis.com/sourceLocation": {"line": _log_call_line(), "file": access_log.__file__,
                                                  "function": "_log"}}
    assert lines() == [
        {**common, "cache": "miss", "tag": "love", "message": "GET /tags/love 200",
         "logging.googleapis.com/spanId": "0000000000000001",
         "httpRequest": {"requestMethod": "GET", "requestUrl": "http://localhost/tags/love", "status": 200,
                         "latency": "0.250000s", "userAgent": "probe/1.0", "remoteIp": "203.0.113.9"}},
        {**common, "cache": "miss", "tag": "love", "message": "GET /api/tags/love 200",
         "logging.googleapis.com/spanId": "00f067aa0ba902b7",
         "httpRequest": {"requestMethod": "GET", "requestUrl": "https://localhost/api/tags/love?x=1",
                         "status": 200, "latency": "0.250000s", "userAgent": "probe/2.0", "remoteIp": "127.0.0.1"}},
        {**common, "cache": "none", "tag": None, "message": "GET /healthz 200",
         "logging.googleapis.com/trace": "", "logging.googleapis.com/spanId": "",
         "logging.googleapis.com/trace_sampled": False,
         "httpRequest": {"requestMethod": "GET", "requestUrl": "http://localhost/healthz", "status": 200,
                         "latency": "0.250000s", "userAgent": "probe/3.0", "remoteIp": "127.0.0.1"}}]


def test_a_request_context_around_the_log_call_changes_nothing(app, lines, monkeypatch):
    """The record carries every request field (trace None when the request had none), so the JSON
    handler's filter infers nothing, not even inside some other Flask request context."""
    from flask import Flask

    with Flask("other").test_request_context("/elsewhere", headers={"X-Cloud-Trace-Context": "f" * 32 + "/7;o=1"}):
        app.test_client().get("/healthz")
    (line,) = lines()
    assert (line["logging.googleapis.com/trace"], line["logging.googleapis.com/spanId"],
            line["logging.googleapis.com/trace_sampled"]) == ("", "", False)
    assert line["httpRequest"]["requestUrl"] == "http://localhost/healthz" and "protocol" not in line["httpRequest"]


def test_stale_404_redirect_and_untraced_requests(app, store, clock, lines):
    client = app.test_client()
    client.get("/tags/love")
    clock.now += 60  # past the cache TTL: the re-read fails and the last good copy is served stale
    store.down = True
    assert client.get("/tags/love").status_code == 503
    store.down = False
    assert client.get("/tags/nosuchtag").status_code == 404
    assert client.get("/tags/Love").status_code == 301
    assert client.get("/healthz?x=1", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.1",
                                                "X-Forwarded-Proto": "https"}).status_code == 200
    _, stale, missing, redirect, health = lines()
    assert (stale["httpRequest"]["status"], stale["cache"], stale["severity"]) == (503, "stale", "WARNING")
    assert (missing["httpRequest"]["status"], missing["cache"], missing["tag"]) == (404, "miss", "nosuchtag")
    assert (redirect["httpRequest"]["status"], redirect["tag"]) == (301, "Love")
    assert (health["tag"], health["cache"]) == (None, "none")
    assert health["httpRequest"]["remoteIp"] == "203.0.113.9"
    assert health["httpRequest"]["requestUrl"] == "https://localhost/healthz?x=1"
    assert health["logging.googleapis.com/trace"] == ""  # no trace header: no trace


def test_a_non_ascii_tag_is_logged_as_the_client_sent_it(app, store, lines):
    store.docs["東京"] = doc("東京", "東京")
    assert app.test_client().get("/tags/%E6%9D%B1%E4%BA%AC").status_code == 200
    (line,) = lines()
    assert line["tag"] == "東京" and line["message"] == "GET /tags/東京 200"


def test_an_exception_out_of_the_app_is_logged_as_500_and_re_raised(lines):
    def broken(environ, start_response):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        AccessLog(broken, PROJECT)({"REQUEST_METHOD": "GET", "PATH_INFO": "/tags/x"}, lambda *a: None)
    (line,) = lines()
    assert (line["httpRequest"]["status"], line["tag"], line["severity"]) == (500, "x", "WARNING")


def test_create_app_wires_it_outermost_unless_switched_off(app, store, lines):
    assert isinstance(app.wsgi_app, AccessLog) and app.wsgi_app.project == PROJECT
    quiet = create_app(Settings(project=PROJECT, access_log=False), store)
    assert not isinstance(quiet.wsgi_app, AccessLog)
    assert quiet.test_client().get("/tags/love").status_code == 200 and lines() == []
    assert Settings.from_env({"HASHTAGS_ACCESS_LOG": "false"}).access_log is False


@pytest.mark.parametrize("path, tag", [("/tags/love", "love"), ("/api/tags/love", "love"),
                                       ("/api/v1/tags/love", "love"), ("/tags/", None), ("/tags/a/b", None),
                                       ("/static/site.css", None), ("/api/openapi.json", None)])
def test_tag_of(path, tag):
    assert tag_of(path) == tag


def test_text_mode_keeps_the_same_fields_readable(app):
    stream = io.StringIO()
    handler = logs.text_handler(stream)
    LOGGER.addHandler(handler)
    old = (LOGGER.level, LOGGER.propagate)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    try:
        app.test_client().get("/tags/love", headers={"X-Cloud-Trace-Context": f"{TRACE_ID}/1"})
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(old[0])
        LOGGER.propagate = old[1]
    line = stream.getvalue().strip()
    assert "INFO serving.access: GET /tags/love 200 | event=http_request cache=miss tag=love" in line
    assert "status=200" in line and f"trace=projects/{PROJECT}/traces/{TRACE_ID}" in line


def test_long_urls_and_agents_are_logged_clipped(app, lines):
    from serving.access_log import MAX_LOGGED_CHARS, MAX_TAG_CHARS

    path, query, agent = "/tags/" + "a" * 9000, "q=" + "b" * 5000, "UA/" + "c" * 3000
    response = app.test_client().get(f"{path}?{query}", headers={"User-Agent": agent})
    assert response.status_code == 414
    line = lines()[-1]
    assert line["httpRequest"]["status"] == 414
    cut_path = path[:MAX_LOGGED_CHARS] + f"…[{len(path) - MAX_LOGGED_CHARS} more]"
    cut_query = query[:MAX_LOGGED_CHARS] + f"…[{len(query) - MAX_LOGGED_CHARS} more]"
    assert line["message"] == f"GET {cut_path} 414"
    assert line["httpRequest"]["requestUrl"] == f"http://localhost{cut_path}?{cut_query}"
    assert line["httpRequest"]["userAgent"] == agent[:MAX_LOGGED_CHARS] + f"…[{len(agent) - MAX_LOGGED_CHARS} more]"
    assert line["tag"] == "a" * MAX_TAG_CHARS  # tag_of's own cap, from the whole path
    assert len(json.dumps(line)) < 4 * MAX_LOGGED_CHARS + 1500  # unclipped: ~26,000


_latin1 = st.text(st.characters(max_codepoint=0xFF), max_size=80)  # PEP 3333: header values are latin-1 str


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_latin1, query=_latin1, traceparent=_latin1, xcloud=_latin1, forwarded=_latin1, agent=_latin1,
       method=st.sampled_from(["GET", "HEAD", "POST", "DELETE"]))
def test_any_request_through_the_real_app_gives_exactly_one_json_line_with_its_status(
        app, lines, path, query, traceparent, xcloud, forwarded, agent, method):
    from werkzeug.test import create_environ

    environ = create_environ("/", "http://localhost/", method=method)
    environ.update(PATH_INFO="/" + path, QUERY_STRING=query, HTTP_TRACEPARENT=traceparent,
                   HTTP_X_CLOUD_TRACE_CONTEXT=xcloud, HTTP_X_FORWARDED_FOR=forwarded, HTTP_USER_AGENT=agent)
    seen = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    assert len(seen) == 1 and (method != "HEAD" or body == b"")
    line = lines()[-1]
    assert line["event"] == "http_request"
    assert line["httpRequest"]["status"] == int(seen[0][:3]) and line["httpRequest"]["requestMethod"] == method
    assert line["cache"] in ("hit", "miss", "stale", "none")
    assert line["tag"] == tag_of(line["message"].split(" ", 1)[1].rsplit(" ", 1)[0])


FORGED = "/tags/x\nFAKE LINE\r\x00\x1b[2J\xe2\x80\xa8end"  # PATH_INFO (latin-1 text) of /tags/x%0aFAKE%20LINE%0d%00%1b[2J%e2%80%a8end


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_lines_cannot_be_forged_in_either_format(app, fmt):
    """A path (and query, user agent, forwarded address) with line breaks, NUL or escape bytes
    writes ONE line, the characters percent-encoded, in the JSON (Cloud Run) and the text format."""
    stream = io.StringIO()
    handler = logs.json_handler("web", stream, PROJECT) if fmt == "json" else logs.text_handler(stream)
    old = (LOGGER.level, LOGGER.propagate)
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    try:
        app.test_client().get("/", environ_overrides={
            "PATH_INFO": FORGED, "QUERY_STRING": "q=\n2", "HTTP_USER_AGENT": "ua\x00\x7f",
            "HTTP_X_FORWARDED_FOR": "1.2.3.4\nFAKE"})
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(old[0])
        LOGGER.propagate = old[1]
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n") and "\x00" not in out and "\r" not in out
    assert "\x1b" not in out and "\u2028" not in out and "\x7f" not in out
    escaped = "/tags/x%0AFAKE LINE%0D%00%1B[2J%E2%80%A8end"
    if fmt == "json":
        line = json.loads(out)
        assert line["message"] == f"GET {escaped} 404"
        assert line["httpRequest"]["requestUrl"] == f"http://localhost{escaped}?q=%0A2"
        assert line["httpRequest"]["userAgent"] == "ua%00%7F"
        assert line["httpRequest"]["remoteIp"] == "1.2.3.4%0AFAKE"
    else:
        assert f"GET {escaped} 404 | " in out and "userAgent=ua%00%7F" in out


def test_quick_cache_hits_are_summed_in_one_line_per_minute_not_logged_one_by_one(store, lines):
    """Hits (X-Cache: hit, below 500, quicker than SLOW_SECONDS) get no http_request line: the
    process counts them and writes one http_hits line when the minute is over, by status and tag."""
    ticks = Clock()
    summary = access_log.HitSummary(clock=ticks)
    app = create_app(Settings(project=PROJECT), store, clock=Clock())  # the cache's time stands still
    app.wsgi_app.summary = summary  # the AccessLog (outermost)
    c = app.test_client()
    assert c.get("/tags/love").headers["X-Cache"] == "miss"
    for path in ["/tags/love"] * 5 + ["/api/tags/love"] * 3 + ["/api/v1/tags/love"]:
        assert c.get(path).headers["X-Cache"] == "hit"
    c.get("/tags/nothing")  # a miss: 404, logged
    c.get("/tags/nothing")  # a cached 404: counted
    c.get("/tags/love", headers={"If-None-Match": f'"{c.get("/tags/love").headers["ETag"][1:-1]}"'})  # 304 hit
    assert [(l["event"], l["cache"], l["httpRequest"]["status"]) for l in lines()] == [
        ("http_request", "miss", 200), ("http_request", "miss", 404)]
    ticks.now += 60
    c.get("/tags/love")  # the first hit after the minute writes the summary
    summaries = [l for l in lines() if l["event"] == "http_hits"]
    assert len(summaries) == 1
    s = summaries[0]
    assert (s["hits"], s["statuses"], s["tags"], s["other_tags"]) == (13, {"200": 11, "304": 1, "404": 1}, 2, 0)
    assert s["top_tags"] == [{"tag": "love", "hits": 12}, {"tag": "nothing", "hits": 1}]
    assert s["window_seconds"] == 60 and s["message"] == "13 cache hits in 60 s" and s["severity"] == "INFO"
    c.get("/tags/love")
    app.wsgi_app.flush()  # at exit: the rest
    assert [l["hits"] for l in lines() if l["event"] == "http_hits"] == [13, 1]
