"""Structured logs for every deployable (issue 10): one ``setup(service)`` per process, fixed event
names, one helper to log an event.

* ``setup(service)`` configures the ROOT logger with one handler on stdout:
  JSON lines in Cloud Logging's structured format (google-cloud-logging's ``StructuredLogHandler``;
  Cloud Run, Composer and the Dataflow launcher ship a container's stdout to Cloud Logging and
  parse one JSON object per line into ``jsonPayload`` + the special fields) when
  ``HASHTAGS_LOG_FORMAT=json`` or when running on Google Cloud (:func:`on_google_cloud`);
  human-readable text otherwise (``HASHTAGS_LOG_FORMAT=text`` forces it), the same fields appended
  as ``key=value``.
* A record's fields travel as ``extra={"json_fields": {...}}`` (StructuredLogHandler merges them
  into the JSON payload beside ``message``), plus ``http_request`` / ``trace`` / ``span_id`` /
  ``trace_sampled`` extras, which the handler's filter turns into ``httpRequest`` and
  ``logging.googleapis.com/trace|spanId|trace_sampled`` (read in google-cloud-logging 3.17.0,
  handlers/handlers.py ``CloudLoggingFilter.filter`` and ``_format_and_parse_message``). An
  explicit ``trace`` extra is written as given: callers pass the project-qualified
  ``projects/<p>/traces/<id>`` (the filter only qualifies a trace it inferred itself).
* Per-record cost (the web service logs one record per request): the JSON handler's filter is a
  CloudLoggingFilter subclass that skips the library's request inference for a record carrying
  every request field (:func:`log_event` with ``http_request`` sets all four) and memoises the
  labels' and source location's JSON; :func:`log_event` finds its caller's frame itself instead of
  ``Logger.findCaller``. The line is the library's, byte for byte (tests/unit/test_logs.py);
  figures in docs/BENCHMARKS.md "Request log (issue 10)".
* Event names and fields are a contract: terraform/monitoring.tf's log-based metrics
  filter on ``jsonPayload.event`` and the fields below. Do not rename them.

This module imports only the standard library at import time (google-cloud-logging is imported in
``setup``), so the DAG, which runs where this project is not installed, can build its run record
with :func:`recount_run_fields` and log it through Airflow's own handlers.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from typing import Any, Mapping, TextIO

FORMAT_ENV = "HASHTAGS_LOG_FORMAT"  # json | text | unset (auto)

# Fixed event names (the contract above).
HTTP_REQUEST = "http_request"
RECOUNT_RUN = "recount_run"
STREAMING_JOB_START = "streaming_job_start"
MODERATION = "moderation"
REDRIVE = "redrive"

# recount_run statuses
SUCCEEDED, FAILED, DRIFT = "succeeded", "failed", "drift"

# Environment variables that mean "this process runs on Google Cloud, stdout goes to Cloud Logging":
# K_SERVICE is set by Cloud Run services, CLOUD_RUN_JOB by Cloud Run jobs (both are what
# google-cloud-logging's own resource detection keys on: handlers/_monitored_resources.py);
# COMPOSER_ENVIRONMENT is one of Cloud Composer's reserved variables, set in its Airflow containers
# (Composer docs, "Set environment variables": reserved names). Dataflow documents no such variable
# for the Flex Template launcher: FLEX_TEMPLATE_PYTHON_PY_FILE is set by OUR launcher image
# (docker/dataflow/Dockerfile), the only place the job mains run on Google Cloud. (The Dataflow
# workers' logs are not ours to configure: Beam's SDK harness installs its own handler.)
CLOUD_MARKERS = ("K_SERVICE", "CLOUD_RUN_JOB", "COMPOSER_ENVIRONMENT", "FLEX_TEMPLATE_PYTHON_PY_FILE")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that are noisy at INFO in every deployable.
QUIET_LOGGERS = ("apache_beam", "google.auth", "urllib3")


def on_google_cloud(env: Mapping[str, str] = os.environ) -> bool:
    return any(env.get(name) for name in CLOUD_MARKERS)


def wants_json(env: Mapping[str, str] = os.environ) -> bool:
    fmt = env.get(FORMAT_ENV, "").strip().lower()
    if fmt in ("json", "text"):
        return fmt == "json"
    return on_google_cloud(env)


class TextFormatter(logging.Formatter):
    """The local, human-readable form: the usual line, then the record's structured fields as
    ``key=value`` (strings with spaces or quotes JSON-quoted), so local logs say what the JSON says."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _text_fields(record)
        if not extras:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        return head + " | " + " ".join(f"{k}={_text_value(v)}" for k, v in extras) + sep + tail


def _text_fields(record: logging.LogRecord) -> list[tuple[str, Any]]:
    out = list((getattr(record, "json_fields", None) or {}).items())
    http = getattr(record, "http_request", None)
    if http:
        out += [(k, v) for k, v in http.items() if v is not None]
    if getattr(record, "trace", None):
        out.append(("trace", record.trace))
    return out


_BARE = re.compile(r'[^\s"=]+')


def _text_value(v: Any) -> str:
    if isinstance(v, str) and _BARE.fullmatch(v):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return json.dumps(v, ensure_ascii=False, default=str)


def json_handler(service: str, stream: TextIO | None = None, project: str | None = None) -> logging.Handler:
    """google-cloud-logging's StructuredLogHandler on ``stream`` (stdout), labelled with the service,
    with its CloudLoggingFilter replaced by :func:`_explicit_request_filter`'s subclass."""
    import google.cloud.logging_v2
    from google.cloud.logging_v2.handlers import StructuredLogHandler

    # The handler's first emit writes the library's own "diagnostic" entry (instrumentation
    # telemetry), through a logger that also propagates to the root: two lines of noise per process.
    google.cloud.logging_v2._instrumentation_emitted = True
    handler = StructuredLogHandler(stream=stream or sys.stdout, project_id=project, labels={"service": service})
    (library_filter,) = handler.filters
    handler.removeFilter(library_filter)
    handler.addFilter(_explicit_request_filter()(project=project, default_labels={"service": service}))
    return handler


# The request fields a record can carry; CloudLoggingFilter.filter reads each as
# ``getattr(record, name, inferred)``, so a record that carries all four never uses the inference.
REQUEST_EXTRAS = frozenset({"http_request", "trace", "span_id", "trace_sampled"})
# Extras that the library's filter reads and the shortcut does not handle.
_OTHER_EXTRAS = frozenset({"labels", "source_location", "resource"})
_MAX_CACHED = 1024  # source locations / logger names memoised by the filter (call sites are few)


@functools.cache
def _explicit_request_filter() -> type:
    """A CloudLoggingFilter (google-cloud-logging 3.17.0, handlers/handlers.py) that sets the same
    record attributes, without the per-record work a record with every request field makes useless.

    The library's ``filter`` calls ``get_request_data()`` for every record (OpenTelemetry, Django
    and Flask look-ups, ~5 µs) before reading the explicit extras that override it, and json.dumps
    the labels and the source location, constant per logger / call site, every time. For a record
    carrying all of :data:`REQUEST_EXTRAS` (the request log's, :func:`log_event` with
    ``http_request``) and no ``labels`` / ``source_location`` / ``resource`` extra, this one skips
    the inference and memoises those two strings; any other record goes through the library's own
    ``filter`` unchanged. tests/unit/test_logs.py compares the attributes of both on the same
    records. Built on first use: this module imports only the standard library at import time."""
    from google.cloud.logging_v2.handlers.handlers import CloudLoggingFilter

    # json.dumps(obj, ensure_ascii=False), as the library calls it, builds this encoder per call.
    encode = json.JSONEncoder(ensure_ascii=False).encode

    class ExplicitRequestFilter(CloudLoggingFilter):
        def __init__(self, project=None, default_labels=None):
            super().__init__(project=project, default_labels=default_labels)
            self._labels: dict[str, tuple[dict | None, str]] = {}
            self._sites: dict[tuple, tuple[dict | None, str]] = {}

        def filter(self, record):
            d = record.__dict__
            if not d.keys() >= REQUEST_EXTRAS or not d.keys().isdisjoint(_OTHER_EXTRAS):
                return super().filter(record)
            record._resource = None
            record._trace = d["trace"] or None
            record._span_id = d["span_id"] or None
            record._trace_sampled = bool(d["trace_sampled"])
            record._http_request = d["http_request"]
            record._source_location, record._source_location_str = self._source_location(record)
            record._labels, record._labels_str = self._labels_of(record.name)
            record._trace_str = record._trace or ""
            record._span_id_str = record._span_id or ""
            record._trace_sampled_str = "true" if record._trace_sampled else "false"
            record._http_request_str = encode(record._http_request or {})
            return True

        def _source_location(self, record) -> tuple[dict | None, str]:
            key = (record.pathname, record.lineno, record.funcName)
            found = self._sites.get(key)
            if found is None:
                location = CloudLoggingFilter._infer_source_location(record)
                found = (location, encode(location or {}))
                if len(self._sites) < _MAX_CACHED:
                    self._sites[key] = found
            return found

        def _labels_of(self, name: str) -> tuple[dict | None, str]:
            found = self._labels.get(name)
            if found is None:
                labels = {**({"python_logger": name} if name else {}), **self.default_labels} or None
                found = (labels, encode(labels or {}))
                if len(self._labels) < _MAX_CACHED:
                    self._labels[name] = found
            return found

    return ExplicitRequestFilter


def text_handler(stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(TextFormatter())
    return handler


def setup(service: str, *, level: int = logging.INFO, env: Mapping[str, str] = os.environ,
          stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger of this process (replacing its handlers) and return the handler.

    ``service`` labels every JSON line (``logging.googleapis.com/labels.service``). The project used
    for trace ids comes from ``HASHTAGS_PROJECT`` / ``GOOGLE_CLOUD_PROJECT`` when set."""
    project = env.get("HASHTAGS_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or None
    handler = json_handler(service, stream, project) if wants_json(env) else text_handler(stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler


def log_event(logger: logging.Logger, event: str, message: str | None = None, *, level: int = logging.INFO,
              http_request: Mapping[str, Any] | None = None, trace: str | None = None,
              span_id: str | None = None, trace_sampled: bool | None = None, stacklevel: int = 1,
              **fields: Any) -> None:
    """Log one event record: ``event`` and ``fields`` in ``json_fields``; the optional request and
    trace go where Cloud Logging reads them. ``message`` defaults to the event name; the source
    location is the caller's (``stacklevel`` more frames up for wrappers).

    With ``http_request``, all of :data:`REQUEST_EXTRAS` are set (``None`` / ``False`` without a
    trace), so the JSON handler's filter infers nothing from the environment; without it, the trace
    extras are set only when given, as before."""
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {"json_fields": {"event": event, **fields}}
    if http_request is not None:
        extra.update(http_request=http_request, trace=trace or None, span_id=span_id if trace else None,
                     trace_sampled=bool(trace and trace_sampled))
    elif trace:
        extra["trace"] = trace
        if span_id:
            extra["span_id"] = span_id
        if trace_sampled is not None:
            extra["trace_sampled"] = trace_sampled
    if not isinstance(logger, logging.Logger):  # a LoggerAdapter: its own process() and log()
        logger.log(level, message or event, extra=extra, stacklevel=stacklevel + 1)
        return
    # The caller's frame, as Logger.findCaller(stacklevel=stacklevel + 1) would find it from here
    # (Python 3.11 logging: it skips logging's own frames, then counts this one and the caller's),
    # without its per-frame os.path.normcase walk; the record is then made and handled as
    # Logger._log does.
    caller = sys._getframe(stacklevel)
    code = caller.f_code
    logger.handle(logger.makeRecord(logger.name, level, code.co_filename, caller.f_lineno, message or event, (),
                                    None, code.co_name, extra))


# ---- the recount run summary (recount main and the DAG's report task) -------------------------
def recount_status(report: Mapping[str, Any] | None, failed: bool = False) -> str:
    """failed (no report, or the run failed), drift (the report exceeds its threshold), succeeded."""
    if failed or report is None:
        return FAILED
    return DRIFT if report.get("exceeds_threshold") else SUCCEEDED


def recount_run_fields(report: Mapping[str, Any] | None, *, mode: str | None, job: str | None,
                       status: str | None = None, as_of: str | None = None,
                       threshold: float | None = None, worst: int = 5) -> dict[str, Any]:
    """The ``recount_run`` record's fields from a drift report (pipelines/drift.build_report's
    document) or from nothing (a failed run: counts are None). ``status`` defaults to
    :func:`recount_status`; a given ``threshold`` (the DAG's) decides drift when the report was
    written without one."""
    if status is None:
        status = recount_status(report)
        if status == SUCCEEDED and threshold is not None and report is not None \
                and float(report["drift_ratio"]) > threshold:
            status = DRIFT
    fields: dict[str, Any] = {"status": status, "mode": mode,
                              "as_of": (report or {}).get("as_of") or as_of, "job": job,
                              "tags_touched": None, "drifted_tags": None, "drift_ratio": None}
    if report is not None:
        fields.update(tags_touched=int(report["tags"]), drifted_tags=int(report["tags_drifted"]),
                      drift_ratio=float(report["drift_ratio"]),
                      threshold=report.get("threshold") if threshold is None else threshold,
                      dry_run=bool(report.get("dry_run")),
                      worst=[{"tag": t["tag"], "diff": t["diff"]} for t in report.get("drifted_tags", [])[:worst]])
    return fields


def log_recount_run(logger: logging.Logger, fields: Mapping[str, Any], message: str | None = None) -> None:
    """The ``recount_run`` record; severity ERROR when the run failed, WARNING on drift."""
    level = {FAILED: logging.ERROR, DRIFT: logging.WARNING}.get(fields["status"], logging.INFO)
    log_event(logger, RECOUNT_RUN, message or f"recount run {fields['status']}", level=level, stacklevel=2,
              **fields)
