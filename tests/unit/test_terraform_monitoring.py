"""terraform/monitoring.tf and terraform/edge.tf against the rest of the module, the code and the runbook.

Parsed with python-hcl2 (the same loader as tests/unit/test_terraform.py). Checked:

* every alert policy has documentation naming ``${var.runbook_url}#<anchor>`` and each anchor is a
  heading of docs/OPERATIONS.md (GitHub's anchor rule);
* every ``${google_….…}``, ``${var.…}`` and ``${local.…}`` inside the monitoring and edge resources
  names something the module defines; every ``metric.type`` is a documented Google Cloud metric
  (the list below, verified in Cloud Monitoring's metric lists) or a log-based metric defined here,
  and every PromQL metric name maps back to one of those;
* the signals issue 10 asks for are all alerted on and all on the dashboard; durations stay within
  Cloud Monitoring's limits (absence <= 23.5 h, alignment <= 25 h);
* the names the alerts filter on are the resources' (the DLQ inspect subscriptions of
  hashtags/settings.py, the streaming job, the DAG id of dags/hashtag_recount.py), and the log
  events are the fixed ones of hashtag_ops.logs;
* the edge: the serverless NEG points at the Cloud Run service, CDN honours the origin's headers
  (USE_ORIGIN_HEADERS, no TTL overrides), the 404 TTL and serve-while-stale equal the code's
  values, HTTP redirects to HTTPS, Cloud Run only takes traffic from the load balancer.

The checks are functions returning problems, and the ``test_detects_*`` tests mutate a copy of the
parsed module to show each check reports what it should.
"""
from __future__ import annotations

import copy
import re
import unicodedata
from pathlib import Path

import pytest

from hashtags import settings
from tests.unit.test_terraform import TERRAFORM, block, load_terraform, parse_file, resolve

ROOT = TERRAFORM.parent
RUNBOOK = ROOT / "docs" / "OPERATIONS.md"

# Google Cloud metric types the policies and the dashboard may use (Cloud Monitoring's metric
# lists for Pub/Sub, Dataflow, Cloud Run, Bigtable, Composer and the load balancer).
DOCUMENTED_METRICS = {
    "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
    "dataflow.googleapis.com/job/data_watermark_age",
    "dataflow.googleapis.com/job/system_lag",
    "dataflow.googleapis.com/job/is_failed",
    "run.googleapis.com/request_count",
    "run.googleapis.com/request_latencies",
    "bigtable.googleapis.com/cluster/cpu_load",
    "bigtable.googleapis.com/cluster/cpu_load_hottest_node",
    "bigtable.googleapis.com/cluster/storage_utilization",
    "composer.googleapis.com/workflow/run_count",
    "loadbalancing.googleapis.com/https/request_count",
}
# What issue 10 asks to alert on, as the metric that carries it.
REQUIRED_SIGNALS = {
    "post-events backlog": "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "oldest unacked message age": "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
    "data freshness": "dataflow.googleapis.com/job/data_watermark_age",
    "system lag": "dataflow.googleapis.com/job/system_lag",
    "job not running": "dataflow.googleapis.com/job/is_failed",
    "reconciliation runs": "logging.googleapis.com/user/hashtags_recount_runs",
    "drift ratio": "logging.googleapis.com/user/hashtags_recount_drift_ratio",
    "Cloud Run 5xx": "run.googleapis.com/request_count",
    "Cloud Run latency": "run.googleapis.com/request_latencies",
    "Bigtable CPU": "bigtable.googleapis.com/cluster/cpu_load",
    "Bigtable storage": "bigtable.googleapis.com/cluster/storage_utilization",
}
# The log events hashtag_ops.logs emits (fixed names).
LOG_EVENTS = {"http_request", "recount_run", "streaming_job_start", "moderation", "redrive"}

MAX_ABSENCE_SECONDS = 84_600  # 23.5 h ("Create metric-absence alerting policies")
MAX_ALIGNMENT_SECONDS = 90_000  # 25 h for alerting policies (Aggregation.alignment_period)

_INTERP = re.compile(r"\$\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_RESOURCE_REF = re.compile(r"\b(google_[a-z0-9_]+)\.([a-z0-9_]+)")
_VAR_REF = re.compile(r"\bvar\.([a-z0-9_]+)")
_LOCAL_REF = re.compile(r"\blocal\.([a-z0-9_]+)")
_METRIC_TYPE = re.compile(r'metric\.type\s*=\s*\\?"([^"\\]+)\\?"')
_RUNBOOK_LINK = re.compile(r"\$\{var\.runbook_url\}#([a-z0-9-]+)")


# --- helpers ------------------------------------------------------------------------------------------

def github_anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped (letters, digits, '-', '_' and
    spaces kept), spaces to '-'."""
    text = unicodedata.normalize("NFKC", heading.strip()).lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def runbook_anchors(path: Path = RUNBOOK) -> set[str]:
    anchors = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            anchors.add(github_anchor(m.group(1)))
    return anchors


def walk_strings(value):
    """Every string inside a parsed HCL value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from walk_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_strings(v)


def file_resources(model: dict, filename: str) -> dict[tuple[str, str], dict]:
    """{(type, name): body} of the resources declared in one terraform file."""
    declared = parse_file(TERRAFORM / filename)
    out = {}
    for blk in declared.get("resource", []):
        for rtype, named in blk.items():
            for name in named:
                out[(rtype, name)] = model["resource"][rtype][name]
    return out


def policies(model: dict) -> dict[str, dict]:
    return model["resource"].get("google_monitoring_alert_policy", {})


def conditions(policy: dict) -> list[dict]:
    return policy.get("conditions", [])


def condition_kind(cond: dict) -> tuple[str, dict]:
    for kind in ("condition_threshold", "condition_absent", "condition_prometheus_query_language",
                 "condition_matched_log", "condition_monitoring_query_language"):
        if cond.get(kind):
            return kind, block(cond, kind)
    raise AssertionError(f"condition without a known kind: {sorted(cond)}")


def expand_locals(model: dict, text: str, depth: int = 0) -> str:
    """Substitute ${local.x} whose value is a plain string (one level of nesting is enough here)."""
    def sub(m):
        inner = m.group(1).strip()
        lm = re.fullmatch(r"local\.([a-z0-9_]+)", inner)
        if lm and isinstance(model["locals"].get(lm.group(1)), str) and depth < 3:
            return expand_locals(model, model["locals"][lm.group(1)], depth + 1)
        return m.group(0)
    return _INTERP.sub(sub, text)


def logging_metric_names(model: dict) -> dict[str, str]:
    """{resource name: metric name} of the google_logging_metric resources."""
    return {rname: body["name"] for rname, body in model["resource"].get("google_logging_metric", {}).items()}


def metric_types(model: dict, text: str) -> set[str]:
    """metric.type values in a filter, with ${google_logging_metric.X.name} resolved."""
    names = logging_metric_names(model)
    text = expand_locals(model, text)
    text = re.sub(r"\$\{google_logging_metric\.([a-z0-9_]+)\.name\}",
                  lambda m: names.get(m.group(1), f"<missing google_logging_metric.{m.group(1)}>"), text)
    return set(_METRIC_TYPE.findall(text))


def promql_to_metric_type(model: dict, query: str) -> set[str]:
    """The Cloud Monitoring metric types a PromQL query reads, by the documented mapping rule
    (first '/' -> ':', other '.' and '/' -> '_'), inverted against the candidates we know."""
    query = expand_locals(model, query)
    names = logging_metric_names(model)
    query = re.sub(r"\$\{google_logging_metric\.([a-z0-9_]+)\.name\}",
                   lambda m: names.get(m.group(1), f"missing_{m.group(1)}"), query)
    candidates = DOCUMENTED_METRICS | {f"logging.googleapis.com/user/{n}" for n in names.values()}
    by_promql = {}
    for mt in candidates:
        domain, path = mt.split("/", 1)
        by_promql[re.sub(r"[./]", "_", domain) + ":" + re.sub(r"[./]", "_", path)] = mt
    used = set(re.findall(r"\b([a-z_][a-z0-9_]*:[a-z0-9_]+)", query))
    return {by_promql.get(name, f"<unknown PromQL metric {name}>") for name in used}


def policy_metric_types(model: dict, policy: dict) -> set[str]:
    found = set()
    for cond in conditions(policy):
        kind, body = condition_kind(cond)
        if kind == "condition_prometheus_query_language":
            found |= promql_to_metric_type(model, body["query"])
        else:
            found |= metric_types(model, body["filter"])
            if body.get("denominator_filter"):
                found |= metric_types(model, body["denominator_filter"])
    return found


def seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, f"duration {duration!r} is not whole seconds"
    return int(m.group(1))


# --- the checks -------------------------------------------------------------------------------------------

def interpolations(model: dict, filenames=("monitoring.tf", "edge.tf")):
    """(where, expression) of every ${...} in those files' resources and in the module's locals."""
    bodies = {}
    for filename in filenames:
        bodies.update({f"{t}.{n}": b for (t, n), b in file_resources(model, filename).items()})
    bodies["locals"] = model["locals"]
    for where, body in bodies.items():
        for text in walk_strings(body):
            for expr in _INTERP.findall(text):
                yield where, expr


def reference_problems(model: dict) -> list[str]:
    """References in the monitoring and edge resources (and the module's locals) that name nothing."""
    problems = []
    res = model["resource"]
    for where, expr in interpolations(model):
        for rtype, rname in _RESOURCE_REF.findall(expr):
            if rname not in res.get(rtype, {}) and rname not in model["data"].get(rtype, {}):
                problems.append(f"{where}: {rtype}.{rname} is not defined")
        for var in _VAR_REF.findall(expr):
            if var not in model["variable"]:
                problems.append(f"{where}: var.{var} is not declared")
        for loc in _LOCAL_REF.findall(expr):
            if loc not in model["locals"]:
                problems.append(f"{where}: local.{loc} is not defined")
    return problems


def runbook_problems(model: dict, anchors: set[str]) -> list[str]:
    problems = []
    for name, policy in policies(model).items():
        docs = block(policy, "documentation")
        if not docs or not docs.get("content"):
            problems.append(f"{name}: no documentation")
            continue
        links = _RUNBOOK_LINK.findall(docs["content"])
        if not links:
            problems.append(f"{name}: documentation names no runbook section (${{var.runbook_url}}#anchor)")
        for anchor in links:
            if anchor not in anchors:
                problems.append(f"{name}: runbook section #{anchor} is not a heading of docs/OPERATIONS.md")
    return problems


def metric_problems(model: dict) -> list[str]:
    problems = []
    known = DOCUMENTED_METRICS | {f"logging.googleapis.com/user/{n}" for n in logging_metric_names(model).values()}
    for name, policy in policies(model).items():
        used = policy_metric_types(model, policy)
        if not used:
            problems.append(f"{name}: no metric found in its conditions")
        for mt in sorted(used - known):
            problems.append(f"{name}: metric {mt} is neither documented nor a log-based metric of this module")
    return problems


def limit_problems(model: dict) -> list[str]:
    problems = []
    for name, policy in policies(model).items():
        for cond in conditions(policy):
            kind, body = condition_kind(cond)
            for agg in body.get("aggregations", []) + body.get("denominator_aggregations", []):
                if seconds(agg["alignment_period"]) > MAX_ALIGNMENT_SECONDS:
                    problems.append(f"{name}: alignment period {agg['alignment_period']} > 25 h")
            if kind == "condition_absent" and seconds(body["duration"]) > MAX_ABSENCE_SECONDS:
                problems.append(f"{name}: absence duration {body['duration']} > 23.5 h")
            if kind == "condition_prometheus_query_language" and len(conditions(policy)) != 1:
                problems.append(f"{name}: a PromQL policy must have exactly one condition")
    return problems


@pytest.fixture(scope="module")
def model() -> dict:
    return load_terraform()


# --- parsing and presence ------------------------------------------------------------------------------------

@pytest.mark.parametrize("filename", ["monitoring.tf", "edge.tf", "variables.tf", "outputs.tf", "cloud_run.tf", "apis.tf"])
def test_file_parses(filename):
    assert parse_file(TERRAFORM / filename), filename


def test_monitoring_and_edge_resources_exist(model):
    monitoring = {t for t, _n in file_resources(model, "monitoring.tf")}
    assert monitoring == {"google_logging_metric", "google_monitoring_alert_policy", "google_monitoring_dashboard"}
    assert len(policies(model)) == 11
    edge = {t for t, _n in file_resources(model, "edge.tf")}
    assert edge == {
        "google_compute_global_address", "google_compute_region_network_endpoint_group",
        "google_compute_backend_service", "google_compute_url_map", "google_compute_managed_ssl_certificate",
        "google_compute_ssl_policy", "google_compute_target_https_proxy", "google_compute_target_http_proxy",
        "google_compute_global_forwarding_rule"}
    apis = parse_file(TERRAFORM / "apis.tf")["locals"][0]["services"]
    for api in ("compute.googleapis.com", "monitoring.googleapis.com", "logging.googleapis.com"):
        assert api in apis


def test_notification_channel_variable_feeds_every_policy(model):
    var = model["variable"]["notification_channels"]
    assert var["default"] == [] and "list(string)" in var["type"]
    for name, policy in policies(model).items():
        assert policy["notification_channels"] == "${var.notification_channels}", name


# --- references, metrics, limits -------------------------------------------------------------------------------

def test_every_reference_names_something_defined(model):
    assert reference_problems(model) == []
    referenced = {ref for _w, expr in interpolations(model) for ref in _RESOURCE_REF.findall(expr)}
    for ref in [("google_pubsub_subscription", "post_events_dlq_inspect"),
                ("google_pubsub_subscription", "top_posts_dlq_inspect"),
                ("google_cloud_run_v2_service", "web"), ("google_bigtable_instance", "hashtags"),
                ("google_dataflow_flex_template_job", "streaming"), ("google_logging_metric", "recount_runs")]:
        assert ref in referenced, f"{ref} is not referenced: the reference scan found nothing?"


def test_every_policy_names_an_existing_runbook_section(model):
    anchors = runbook_anchors()
    assert runbook_problems(model, anchors) == []
    linked = {a for p in policies(model).values() for a in _RUNBOOK_LINK.findall(block(p, "documentation")["content"])}
    assert len(linked) == len(policies(model)), "one runbook section per alert"


def test_every_metric_is_documented_or_defined_here(model):
    assert metric_problems(model) == []


def test_durations_within_cloud_monitoring_limits(model):
    assert limit_problems(model) == []


def test_every_required_signal_is_alerted_and_on_the_dashboard(model):
    alerted = set().union(*(policy_metric_types(model, p) for p in policies(model).values()))
    charts = model["locals"]["dashboard_charts"]
    charted = set().union(*(metric_types(model, c[1]) for c in charts))
    for signal, mt in REQUIRED_SIGNALS.items():
        assert mt in alerted, f"no alert on {signal} ({mt})"
        assert mt in charted, f"{signal} ({mt}) is not on the dashboard"
    assert charted <= DOCUMENTED_METRICS | {f"logging.googleapis.com/user/{n}" for n in logging_metric_names(model).values()}
    dashboard = model["resource"]["google_monitoring_dashboard"]["hashtags"]["dashboard_json"]
    assert dashboard.startswith("${jsonencode(") and "local.dashboard_charts" in dashboard


# --- names the alerts filter on -------------------------------------------------------------------------------

def test_dead_letter_alert_covers_both_dlq_subscriptions(model):
    dlq = {k: resolve(model, v) for k, v in model["locals"]["dlq_subscriptions"].items()}
    assert set(dlq.values()) == {settings.POST_EVENTS_DLQ_SUBSCRIPTION, settings.TOP_POSTS_DLQ_SUBSCRIPTION}
    kind, body = condition_kind(conditions(policies(model)["dead_letters"])[0])
    assert kind == "condition_prometheus_query_language"
    assert "local.dlq_subscriptions" in body["query"] and body["query"].startswith("delta(")
    assert body["query"].rstrip().endswith("> 0"), "any growth"


def test_backlog_alert_watches_the_job_subscriptions(model):
    conds = conditions(policies(model)["post_events_backlog"])
    backlog = condition_kind(conds[0])[1]["filter"]
    assert "${google_pubsub_subscription.post_events_streaming.name}" in backlog
    assert resolve(model, "${google_pubsub_subscription.post_events_streaming.name}") == settings.POST_EVENTS_SUBSCRIPTION
    assert {resolve(model, s) for s in model["locals"]["input_subscriptions"]} == {
        settings.POST_EVENTS_SUBSCRIPTION, settings.POST_EVENTS_UNSTAMPED_SUBSCRIPTION, settings.TOP_POSTS_SUBSCRIPTION}
    assert "local.input_subscriptions" in condition_kind(conds[1])[1]["filter"]


def test_streaming_alerts_name_the_job_and_follow_its_count(model):
    job = model["resource"]["google_dataflow_flex_template_job"]["streaming"]
    assert model["locals"]["streaming_job_filter"].endswith(f'job_name = "{job["name"]}"')
    for name in ("streaming_freshness", "streaming_not_running"):
        policy = policies(model)[name]
        assert policy["count"] == job["count"] == "${var.deploy_streaming_job ? 1 : 0}"
        for cond in conditions(policy):
            assert "${google_dataflow_flex_template_job.streaming[0].name}" in condition_kind(cond)[1]["filter"]
    kinds = [condition_kind(c)[0] for c in conditions(policies(model)["streaming_not_running"])]
    assert kinds == ["condition_threshold", "condition_absent"], "failed, or gone"


def test_log_based_metrics_filter_on_the_fixed_log_events(model):
    metrics = model["resource"]["google_logging_metric"]
    for rname, body in metrics.items():
        events = set(re.findall(r'jsonPayload\.event=\\?"([a-z_]+)', expand_locals(model, body["filter"])))
        assert events and events <= LOG_EVENTS, (rname, events)
    runs = metrics["recount_runs"]
    assert runs["label_extractors"]["status"] == "EXTRACT(jsonPayload.status)"
    assert block(runs, "metric_descriptor")["metric_kind"] == "DELTA"
    drift = metrics["recount_drift_ratio"]
    assert drift["value_extractor"] == "EXTRACT(jsonPayload.drift_ratio)"
    assert block(drift, "metric_descriptor")["value_type"] == "DISTRIBUTION"
    assert "dry_run=true" in model["locals"]["recount_run_filter"], "a dry run writes no base"


def test_web_request_metric_and_hit_ratio_chart_match_what_the_request_log_writes(model):
    """Since issue 21 quick in-process cache hits have no http_request line (serving/access_log.py
    sums them in http_hits lines): the web_requests metric counts the rest, and the dashboard's hit
    ratio is 1 - web_requests / Cloud Run's request_count, both on the web service's revisions."""
    from serving.access_log import HTTP_HITS, SLOW_SECONDS
    from hashtag_ops.logs import HTTP_REQUEST

    web = model["resource"]["google_logging_metric"]["web_requests"]
    assert web["filter"] == f'jsonPayload.event="{HTTP_REQUEST}"'
    assert web["label_extractors"] == {"cache": "EXTRACT(jsonPayload.cache)", "status": "EXTRACT(httpRequest.status)"}
    dashboard = model["resource"]["google_monitoring_dashboard"]["hashtags"]["dashboard_json"]
    ratio = dashboard[dashboard.index("timeSeriesFilterRatio"):]
    numerator, denominator = ratio.split("denominator", 1)
    assert "google_logging_metric.web_requests.name" in numerator and "local.web_revision_filter" in numerator
    assert 'run.googleapis.com/request_count' in denominator and "local.web_revision_filter" in denominator
    assert "hit ratio" in model["locals"]["web_logged_share_title"]
    runbook = RUNBOOK.read_text()
    assert HTTP_HITS in runbook and "top_tags" in runbook and f"{SLOW_SECONDS} s" in runbook


def test_no_new_base_alert_looks_back_36_hours_and_fires_without_any_series(model):
    assert model["variable"]["recount_max_base_age_hours"]["default"] == 36
    kind, body = condition_kind(conditions(policies(model)["recount_stale"])[0])
    assert kind == "condition_prometheus_query_language"
    query = body["query"]
    assert "[${var.recount_max_base_age_hours}h]" in query
    assert 'status=~\\"succeeded|drift\\"' in query or 'status=~"succeeded|drift"' in query
    assert query.count("or on() vector(0)") == 2 and query.endswith("< 1"), "each side defaults to 0"
    assert 'state=\\"success\\"' in query or 'state="success"' in query
    assert "${local.recount_dag_id}" in query
    assert promql_to_metric_type(model, query) == {"logging.googleapis.com/user/hashtags_recount_runs",
                                                   "composer.googleapis.com/workflow/run_count"}


def test_recount_failure_alert_also_watches_the_dag(model):
    dag_text = (ROOT / "dags" / "hashtag_recount.py").read_text()
    dag_id = re.search(r'^DAG_ID = "([^"]+)"', dag_text, re.M).group(1)
    assert model["locals"]["recount_dag_id"] == dag_id
    filters = [condition_kind(c)[1]["filter"] for c in conditions(policies(model)["recount_failed"])]
    assert any('metric.labels.status = \\"failed\\"' in f or 'metric.labels.status = "failed"' in f for f in filters)
    assert any("composer.googleapis.com/workflow/run_count" in f and "${local.recount_dag_id}" in f for f in filters)


def test_drift_alert_uses_the_dags_threshold_as_a_bucket_bound(model):
    body = condition_kind(conditions(policies(model)["recount_drift"])[0])[1]
    assert body["threshold_value"] == "${local.drift_threshold}"
    assert model["locals"]["drift_threshold"] == "${tonumber(var.recount_drift_threshold)}"
    assert "1," in model["locals"]["drift_bounds"] or ", 1," in model["locals"]["drift_bounds"], \
        "the threshold itself (x1) is a bound"


def test_web_alerts_are_on_the_cloud_run_service(model):
    assert "${google_cloud_run_v2_service.web.name}" in model["locals"]["web_revision_filter"]
    ratio = condition_kind(conditions(policies(model)["web_errors"])[0])[1]
    assert "response_code_class" in ratio["filter"] and "5xx" in ratio["filter"]
    assert "response_code_class" not in ratio["denominator_filter"]
    latency = condition_kind(conditions(policies(model)["web_latency"])[0])[1]
    assert block(latency, "aggregations")["cross_series_reducer"] == "REDUCE_PERCENTILE_99"


# --- the checks bite -----------------------------------------------------------------------------------------

def test_detects_a_reference_to_a_missing_subscription(model):
    mutated = copy.deepcopy(model)
    mutated["locals"]["dlq_subscriptions"]["top_posts"] = "${google_pubsub_subscription.top_posts_dead.name}"
    assert any("google_pubsub_subscription.top_posts_dead" in p for p in reference_problems(mutated))


def test_detects_a_runbook_section_that_does_not_exist(model):
    mutated = copy.deepcopy(model)
    docs = block(mutated["resource"]["google_monitoring_alert_policy"]["bigtable_cpu"], "documentation")
    docs["content"] = docs["content"].replace("#bigtable-cpu", "#bigtable-cpu-hot")
    assert runbook_problems(mutated, runbook_anchors()) == [
        "bigtable_cpu: runbook section #bigtable-cpu-hot is not a heading of docs/OPERATIONS.md"]
    docs["content"] = "no link"
    assert any("names no runbook section" in p for p in runbook_problems(mutated, runbook_anchors()))


def test_detects_an_undocumented_metric_and_an_undefined_log_metric(model):
    mutated = copy.deepcopy(model)
    cond = block(conditions(mutated["resource"]["google_monitoring_alert_policy"]["bigtable_storage"])[0],
                 "condition_threshold")
    cond["filter"] = cond["filter"].replace("cluster/storage_utilization", "cluster/storage_used")
    assert any("bigtable.googleapis.com/cluster/storage_used" in p for p in metric_problems(mutated))
    del mutated["resource"]["google_logging_metric"]["recount_runs"]
    assert any("recount_stale" in p for p in metric_problems(mutated))


def test_detects_an_absence_longer_than_monitoring_allows(model):
    mutated = copy.deepcopy(model)
    absent = block(conditions(mutated["resource"]["google_monitoring_alert_policy"]["streaming_not_running"])[1],
                   "condition_absent")
    absent["duration"] = "129600s"  # 36 h
    assert limit_problems(mutated) == ["streaming_not_running: absence duration 129600s > 23.5 h"]


def test_github_anchor_rule():
    assert github_anchor("Web 5xx ratio") == "web-5xx-ratio"
    assert github_anchor("No new base (36 h)") == "no-new-base-36-h"
    assert github_anchor("post-events backlog") == "post-events-backlog"


# --- the edge -------------------------------------------------------------------------------------------------

def test_load_balancer_fronts_the_cloud_run_service(model):
    res = model["resource"]
    neg = res["google_compute_region_network_endpoint_group"]["web"]
    assert neg["network_endpoint_type"] == "SERVERLESS"
    assert block(neg, "cloud_run")["service"] == "${google_cloud_run_v2_service.web.name}"
    backend = res["google_compute_backend_service"]["web"]
    assert backend["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    assert block(backend, "backend")["group"] == "${google_compute_region_network_endpoint_group.web.id}"
    assert "health_checks" not in backend, "serverless NEGs take no health check"
    assert res["google_compute_url_map"]["web"]["default_service"] == "${google_compute_backend_service.web.id}"
    proxy = res["google_compute_target_https_proxy"]["web"]
    assert proxy["url_map"] == "${google_compute_url_map.web.id}"
    assert proxy["ssl_certificates"] == ["${google_compute_managed_ssl_certificate.web.id}"]
    assert res["google_compute_ssl_policy"]["web"]["min_tls_version"] == "TLS_1_2"
    cert = block(res["google_compute_managed_ssl_certificate"]["web"], "managed")
    assert cert["domains"] == ["${var.web_domain}"]
    rules = res["google_compute_global_forwarding_rule"]
    assert {r["port_range"] for r in rules.values()} == {"443", "80"}
    for rule in rules.values():
        assert rule["load_balancing_scheme"] == "EXTERNAL_MANAGED"
        assert rule["ip_address"] == "${google_compute_global_address.web.id}"
    assert rules["https"]["target"] == "${google_compute_target_https_proxy.web.id}"
    assert rules["http"]["target"] == "${google_compute_target_http_proxy.http_redirect.id}"
    redirect = block(res["google_compute_url_map"]["http_redirect"], "default_url_redirect")
    assert redirect["https_redirect"] is True and redirect["strip_query"] is False


def test_cdn_honours_the_origin_cache_control(model):
    from serving import views
    from hashtags.settings import Settings

    backend = model["resource"]["google_compute_backend_service"]["web"]
    assert backend["enable_cdn"] is True
    cdn = block(backend, "cdn_policy")
    assert cdn["cache_mode"] == "USE_ORIGIN_HEADERS"
    assert {"default_ttl", "max_ttl", "client_ttl"}.isdisjoint(cdn), "USE_ORIGIN_HEADERS takes no TTL overrides"
    assert cdn["negative_caching"] is True
    negative = block(cdn, "negative_caching_policy")
    assert negative["code"] == 404 and negative["ttl"] == "${local.edge_not_found_ttl_seconds}"
    assert model["locals"]["edge_not_found_ttl_seconds"] == views.NOT_FOUND_MAX_AGE
    assert cdn["serve_while_stale"] == "${local.edge_serve_while_stale_seconds}"
    assert model["locals"]["edge_serve_while_stale_seconds"] == Settings().stale_while_revalidate


def test_cloud_run_takes_traffic_only_from_the_load_balancer(model):
    svc = model["resource"]["google_cloud_run_v2_service"]["web"]
    assert svc["ingress"] == "${var.web_ingress}"
    assert model["variable"]["web_ingress"]["default"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert "web_domain" in model["variable"] and "default" not in model["variable"]["web_domain"]


def test_runbook_states_the_origin_share_with_the_configured_cache_headers():
    from hashtags.settings import Settings

    s = Settings()
    text = RUNBOOK.read_text(encoding="utf-8")
    assert f"max-age={s.browser_max_age}" in text
    assert f"stale-while-revalidate={s.stale_while_revalidate}" in text
    assert "invalidate-cdn-cache" in text
    assert "edge-cache" in runbook_anchors()
