"""terraform/ against the project's single source of truth.

terraform reads the names, column families and GC rules the code defines from
terraform/generated/values.json (tests/unit/test_terraform_values.py keeps it current and checks
that terraform reads it). These tests parse every .tf file with python-hcl2 and check what terraform
adds around those names against the code: which topic each subscription reads, its filter, no
ordering or dead-letter policy on what Dataflow reads (``consistency_problems``, whose power the
``test_detects_*`` tests show on mutated copies), the streaming job's parameters
(docker/dataflow/metadata.json and pipelines/options.py), the Cloud Run and Composer variables, IAM.
"""
from __future__ import annotations

import argparse
import copy
import json
import re

import pytest

from hashtags import settings
from tests.unit.terraform_model import (METADATA, ROOT, TERRAFORM, block, load_terraform, parse_file, resolve,
                                        tf_files)

# The Airflow Variables the recount DAG reads (set on Composer as AIRFLOW_VAR_<NAME>).
DAG_VARIABLES = {
    "hashtags_runner", "hashtags_archive", "hashtags_project", "hashtags_bigtable_instance",
    "hashtags_table", "hashtags_region", "hashtags_temp_location", "hashtags_drift_threshold",
    "hashtags_post_state_table", "hashtags_staging_location", "hashtags_service_account",
    "hashtags_recount_template", "hashtags_sdk_container_image", "hashtags_report_location",
    "hashtags_bigtable_app_profile",
}


# --- the Pub/Sub wiring, against the code -----------------------------------------------------------

# The attribute Dataflow takes event time from (pipelines/streaming_main.py EVENT_TIME_ATTRIBUTE).
HAS_EVENT_TIME = "attributes:event_time"


def subscription_facts(model: dict) -> dict:
    """{subscription name: {topic, dead_letter_topic, ordering, retry_policy, filter}}, names resolved."""
    facts = {}
    for body in model["resource"]["google_pubsub_subscription"].values():
        dlp = block(body, "dead_letter_policy")
        facts[resolve(model, body["name"])] = {
            "topic": resolve(model, body.get("topic")),
            "dead_letter_topic": resolve(model, dlp["dead_letter_topic"]) if dlp else None,
            "ordering": bool(body.get("enable_message_ordering", False)),
            "retry_policy": block(body, "retry_policy") is not None,
            "filter": resolve(model, body.get("filter")),
        }
    return facts


def expected_subscriptions() -> dict:
    # The subscriptions Dataflow reads: no message ordering and no Pub/Sub dead-letter policy
    # (terraform/pubsub.tf says why); the post-events pair split by the event_time attribute.
    dataflow = {"dead_letter_topic": None, "ordering": False, "retry_policy": True}
    inspect = {"dead_letter_topic": None, "ordering": False, "retry_policy": False, "filter": None}
    return {
        settings.POST_EVENTS_SUBSCRIPTION: {"topic": settings.POST_EVENTS_TOPIC, **dataflow, "filter": HAS_EVENT_TIME},
        settings.POST_EVENTS_UNSTAMPED_SUBSCRIPTION: {"topic": settings.POST_EVENTS_TOPIC, **dataflow,
                                                      "filter": f"NOT {HAS_EVENT_TIME}"},
        settings.TOP_POSTS_SUBSCRIPTION: {"topic": settings.TOP_POSTS_TOPIC, **dataflow, "filter": None},
        settings.POST_EVENTS_DLQ_SUBSCRIPTION: {"topic": settings.POST_EVENTS_DLQ_TOPIC, **inspect},
        settings.TOP_POSTS_DLQ_SUBSCRIPTION: {"topic": settings.TOP_POSTS_DLQ_TOPIC, **inspect},
    }


def consistency_problems(model: dict) -> list[str]:
    """How the subscriptions in terraform differ from what the code expects; empty when they agree."""
    have, want = subscription_facts(model), expected_subscriptions()
    problems = [f"subscriptions: terraform {sorted(have)}, code {sorted(want)}"] if set(have) != set(want) else []
    for name, expect in want.items():
        for key, value in expect.items():
            if name in have and have[name][key] != value:
                problems.append(f"subscription {name}: {key} is {have[name][key]!r} in terraform, {value!r} in the code")
    return problems


@pytest.fixture(scope="module")
def model() -> dict:
    return load_terraform()


# --- every file parses ------------------------------------------------------------------------

@pytest.mark.parametrize("path", tf_files(), ids=lambda p: p.name)
def test_tf_file_parses(path):
    doc = parse_file(path)
    assert doc, f"{path.name} parsed to nothing"


def test_module_has_the_expected_files():
    names = {p.name for p in tf_files()}
    assert {"versions.tf", "variables.tf", "outputs.tf", "pubsub.tf", "bigtable.tf", "storage.tf",
            "dataflow.tf", "composer.tf", "cloud_run.tf", "iam.tf"} <= names


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_environment_tfvars_parse_and_cover_required_variables(model, env):
    path = TERRAFORM / "environments" / f"{env}.tfvars"
    values = parse_file(path)
    assert values["environment"] == env
    required = {name for name, body in model["variable"].items() if "default" not in body}
    # image_tag is given on the command line (-var=image_tag=<git sha>), per release.
    assert required - {"image_tag"} <= set(values), f"{env}.tfvars misses {required - set(values)}"
    assert set(values) <= set(model["variable"]), f"unknown variables in {env}.tfvars"
    clusters = values["bigtable_clusters"]
    assert len(clusters) == (1 if env == "dev" else 2)
    assert len({c["zone"] for c in clusters}) == len(clusters)


# --- the subscriptions, and proof that the check bites ------------------------------------------------

def test_terraform_matches_the_code(model):
    assert consistency_problems(model) == []
    assert len(subscription_facts(model)) == 5


def _rename(model: dict, rtype: str, rname: str, key: str, value) -> dict:
    mutated = copy.deepcopy(model)
    mutated["resource"][rtype][rname][key] = value
    return mutated


def test_detects_ordering_turned_on(model):
    mutated = _rename(model, "google_pubsub_subscription", "post_events_streaming",
                      "enable_message_ordering", True)
    assert any("subscription post-events-streaming: ordering" in p for p in consistency_problems(mutated))


def test_detects_a_pubsub_dead_letter_policy_on_a_dataflow_subscription(model):
    policy = [{"dead_letter_topic": "${google_pubsub_topic.top_posts_dlq.id}", "max_delivery_attempts": 10}]
    mutated = _rename(model, "google_pubsub_subscription", "top_posts_streaming", "dead_letter_policy", policy)
    assert any("subscription top-posts-streaming: dead_letter_topic" in p for p in consistency_problems(mutated))


def test_detects_the_event_time_filters_changed(model):
    mutated = _rename(model, "google_pubsub_subscription", "post_events_unstamped", "filter",
                      "NOT attributes:event_id")
    assert any("subscription post-events-unstamped: filter" in p for p in consistency_problems(mutated))
    mutated = _rename(model, "google_pubsub_subscription", "post_events_streaming", "filter", None)
    assert any("subscription post-events-streaming: filter" in p for p in consistency_problems(mutated))


def test_no_subscription_the_job_reads_has_ordering_or_a_dead_letter_policy(model):
    """Stated directly on the parsed files (beside the consistency check): every subscription the
    flex template job is given, and every subscription at all."""
    subs = model["resource"]["google_pubsub_subscription"]
    params = model["resource"]["google_dataflow_flex_template_job"]["streaming"]["parameters"]
    read = {resolve(model, v) for k, v in params.items() if k.endswith("_subscription")}
    assert read == {settings.POST_EVENTS_SUBSCRIPTION, settings.POST_EVENTS_UNSTAMPED_SUBSCRIPTION,
                    settings.TOP_POSTS_SUBSCRIPTION}
    for name, body in subs.items():
        assert not body.get("enable_message_ordering", False), name
        assert block(body, "dead_letter_policy") is None, name
    assert "pubsub_max_delivery_attempts" not in model["variable"]


# --- the rest of the module -------------------------------------------------------------------------

def test_google_provider_is_pinned(model):
    providers = {}
    for t in model["terraform"]:
        for rp in t.get("required_providers", []):
            providers.update(rp)
    for name in ("google", "google-beta"):
        assert providers[name]["source"] == f"hashicorp/{name}"
        assert re.fullmatch(r"~> 6\.\d+\.\d+", providers[name]["version"]), providers[name]


def test_variables_and_outputs(model):
    assert {"project", "region", "environment"} <= set(model["variable"])
    assert "validation" in model["variable"]["environment"]
    assert {"topics", "subscriptions", "bigtable_instance", "bigtable_table", "web_url",
            "archive_path", "composer_dag_prefix", "streaming_job_id"} <= set(model["output"])


def test_dead_letters_are_published_by_the_job_not_forwarded_by_pubsub(model):
    res = model["resource"]
    # no grants for Pub/Sub's own dead-letter forwarding (the service agent) remain
    assert "pubsub_service_agent" not in model["locals"]
    for rtype in ("google_pubsub_topic_iam_member", "google_pubsub_subscription_iam_member"):
        for name, body in res.get(rtype, {}).items():
            assert "gcp-sa-pubsub" not in body["member"], f"{rtype}.{name}"
    # the job's service account publishes to both DLQ topics and reads the three subscriptions
    pub = res["google_pubsub_topic_iam_member"]["streaming_dlq_publisher"]
    assert pub["role"] == "roles/pubsub.publisher" and pub["member"] == "${local.streaming_member}"
    dl_topics = {resolve(model, v) for v in model["locals"]["dead_letter_topics"].values()}
    assert dl_topics == {settings.POST_EVENTS_DLQ_TOPIC, settings.TOP_POSTS_DLQ_TOPIC}
    assert {resolve(model, v) for v in model["locals"]["streaming_subscriptions"].values()} == {
        settings.POST_EVENTS_SUBSCRIPTION, settings.POST_EVENTS_UNSTAMPED_SUBSCRIPTION,
        settings.TOP_POSTS_SUBSCRIPTION}


def _streaming_options() -> dict[str, argparse.Action]:
    """The job's own options, and Beam's worker options (sdk_container_image is one)."""
    from apache_beam.options.pipeline_options import WorkerOptions

    from pipelines.options import StreamingOptions

    parser = argparse.ArgumentParser()
    StreamingOptions._add_argparse_args(parser)
    WorkerOptions._add_argparse_args(parser)
    return {a.dest: a for a in parser._actions if a.dest != "help"}


def test_flex_template_job(model):
    job = model["resource"]["google_dataflow_flex_template_job"]["streaming"]
    assert job["provider"] in ("google-beta", "${google-beta}")
    assert job["on_delete"] == "drain"
    assert job["skip_wait_on_job_termination"] is False
    assert job["enable_streaming_engine"] is True
    params = job["parameters"]
    metadata = json.loads(METADATA.read_text())
    declared = {p["name"]: p for p in metadata["parameters"]}
    assert set(params) <= set(declared), f"parameters not in metadata.json: {set(params) - set(declared)}"
    required = {n for n, p in declared.items() if not p.get("isOptional", False)}
    assert required <= set(params)
    assert resolve(model, params["bigtable_table"]) == settings.TABLE
    assert resolve(model, params["post_events_subscription"]) == settings.POST_EVENTS_SUBSCRIPTION
    assert resolve(model, params["post_events_unstamped_subscription"]) == settings.POST_EVENTS_UNSTAMPED_SUBSCRIPTION
    assert resolve(model, params["top_posts_subscription"]) == settings.TOP_POSTS_SUBSCRIPTION
    assert resolve(model, params["post_events_dlq_topic"]) == settings.POST_EVENTS_DLQ_TOPIC
    assert resolve(model, params["top_posts_dlq_topic"]) == settings.TOP_POSTS_DLQ_TOPIC
    assert params["archive_path"] == "${local.archive_path}"


def test_the_job_gets_its_own_image_as_worker_image(model):
    params = model["resource"]["google_dataflow_flex_template_job"]["streaming"]["parameters"]
    # (count_generation: tests/unit/test_terraform_streaming_job.py)
    # the workers' image is the template's image: the same Artifact Registry path and tag that
    # docs/DEPLOY.md builds the flex template spec from
    assert params["sdk_container_image"] == "${local.streaming_image}"
    assert model["locals"]["streaming_image"] == "${local.docker_repository}/streaming:${var.image_tag}"
    assert model["locals"]["streaming_template"].endswith("/templates/streaming-${var.image_tag}.json")
    assert {"setup_file", "requirements_file", "extra_package"}.isdisjoint(params)


def test_metadata_parameters_are_options_of_the_streaming_job():
    metadata = json.loads(METADATA.read_text())
    options = _streaming_options()
    names = [p["name"] for p in metadata["parameters"]]
    assert len(names) == len(set(names))
    assert set(names) <= set(options), f"not options of the job: {set(names) - set(options)}"
    assert {"bigtable_instance", "bigtable_table", "post_events_subscription", "top_posts_subscription",
            "post_events_dlq_topic", "top_posts_dlq_topic", "archive_path", "window_seconds",
            "allowed_lateness_seconds", "early_firing_seconds"} <= set(names)
    for p in metadata["parameters"]:
        assert p["label"] and len(p["helpText"]) > 20, p["name"]
        for rx in p.get("regexes", []):
            re.compile(rx)


def test_metadata_regexes_accept_the_values_terraform_passes(model):
    """Resolve the terraform parameter values with dev's tfvars and check them against metadata."""
    metadata = {p["name"]: p for p in json.loads(METADATA.read_text())["parameters"]}
    dev = parse_file(TERRAFORM / "environments" / "dev.tfvars")
    project = dev["project"]
    values = {
        "bigtable_project": project,
        "bigtable_instance": f"hashtags-{dev['environment']}",
        "bigtable_table": settings.TABLE,
        "post_events_subscription": f"projects/{project}/subscriptions/{settings.POST_EVENTS_SUBSCRIPTION}",
        "top_posts_subscription": f"projects/{project}/subscriptions/{settings.TOP_POSTS_SUBSCRIPTION}",
        "post_events_dlq_topic": f"projects/{project}/topics/{settings.POST_EVENTS_DLQ_TOPIC}",
        "top_posts_dlq_topic": f"projects/{project}/topics/{settings.TOP_POSTS_DLQ_TOPIC}",
        "post_events_unstamped_subscription":
            f"projects/{project}/subscriptions/{settings.POST_EVENTS_UNSTAMPED_SUBSCRIPTION}",
        "archive_path": f"gs://{project}-hashtags-archive/post-events",
        "window_seconds": "3600", "allowed_lateness_seconds": "21600", "early_firing_seconds": "30",
        "count_generation": "20261207214500",
        "sdk_container_image": f"us-central1-docker.pkg.dev/{project}/hashtags/streaming:0123456789ab",
    }
    assert model["locals"]["bigtable_instance_id"] == "${local.name_prefix}"
    assert model["locals"]["name_prefix"] == "hashtags-${var.environment}"
    assert model["locals"]["archive_path"] == "gs://${local.archive_bucket_name}/post-events"
    for name, value in values.items():
        for rx in metadata[name].get("regexes", []):
            assert re.search(rx, value), f"{name}={value!r} does not match {rx}"


def test_cloud_run_service(model):
    from hashtags.settings import Settings
    import dataclasses

    svc = model["resource"]["google_cloud_run_v2_service"]["web"]
    template = block(svc, "template")
    assert template["max_instance_request_concurrency"] == "${var.web_concurrency}"
    assert block(template, "scaling")["min_instance_count"] == "${var.web_min_instances}"
    container = block(template, "containers")
    env = {e["name"]: e["value"] for e in container["env"]}
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name in env:
        if name.startswith(Settings.ENV_PREFIX):
            assert name[len(Settings.ENV_PREFIX):].lower() in fields, f"{name} is not a Settings field"
    assert resolve(model, env["HASHTAGS_TABLE"]) == settings.TABLE
    assert resolve(model, env["HASHTAGS_APP_PROFILE"]) == settings.SERVING_APP_PROFILE
    assert env["HASHTAGS_BIGTABLE_INSTANCE"] == "${google_bigtable_instance.hashtags.name}"
    assert {"HASHTAGS_PROJECT", "HASHTAGS_IMAGE_ORIGINS"} <= set(env)
    # production: a byte-bounded page cache (2 workers of 64 MiB in a 1 GiB instance), reviewed trends
    assert env["HASHTAGS_PAGE_CACHE_BYTES"] == "${tostring(var.page_cache_bytes)}"
    assert model["variable"]["page_cache_bytes"]["default"] == 64 * 2**20
    # review applies where the list is served (serving/trends.py); the job drops hidden/rejected tags
    assert env["HASHTAGS_TRENDS_WITHOUT_REVIEW"] == "false"
    assert block(block(container, "startup_probe"), "http_get")["path"] == "/readyz"
    assert block(block(container, "liveness_probe"), "http_get")["path"] == "/healthz"
    assert block(container, "ports")["container_port"] == 8080


def test_composer_sets_the_airflow_variables_the_dag_reads(model):
    env = model["resource"]["google_composer_environment"]["hashtags"]
    software = block(block(env, "config"), "software_config")
    assert re.match(r"composer-3-airflow-3", model["variable"]["composer_image_version"]["default"])
    assert "local.airflow_variables" in software["env_variables"]
    assert "AIRFLOW_VAR_${upper(name)}" in software["env_variables"]
    variables = model["locals"]["airflow_variables"]
    assert DAG_VARIABLES <= set(variables), DAG_VARIABLES - set(variables)
    assert variables["hashtags_runner"] == "DataflowRunner"
    assert resolve(model, variables["hashtags_table"]) == settings.TABLE
    assert variables["hashtags_archive"] == model["resource"]["google_dataflow_flex_template_job"][
        "streaming"]["parameters"]["archive_path"], "the recount must read what the streaming job archives"
    assert variables["hashtags_report_location"].startswith("gs://${google_storage_bucket.reports.name}/"), \
        "drift reports are kept (not in the temp bucket, which deletes objects)"
    assert resolve(model, variables["hashtags_post_state_table"]) == settings.POST_STATE_TABLE
    assert variables["hashtags_service_account"] == "${google_service_account.recount.email}"


def test_every_variable_a_dag_reads_is_set_on_composer(model):
    """Each Variable.get("hashtags_…") in dags/ has its AIRFLOW_VAR_ on Composer (none: vacuous)."""
    variables = set(model["locals"]["airflow_variables"])
    used = set()
    for path in (ROOT / "dags").glob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r"""Variable\.get\(\s*["'](hashtags_[a-z0-9_]+)["']""", text))
        used |= set(re.findall(r"var\.value\.(hashtags_[a-z0-9_]+)", text))
        # names kept in a dict of Variable name -> local default
        used |= set(re.findall(r"""["'](hashtags_[a-z0-9_]+)["']\s*:""", text))
    if (ROOT / "dags" / "hashtag_recount.py").exists():
        assert DAG_VARIABLES <= used, f"the DAG no longer reads {DAG_VARIABLES - used}: update DAG_VARIABLES"
    missing = used - variables
    assert not missing, f"dags/ reads Airflow Variables terraform does not set: {sorted(missing)}"


def test_least_privilege(model):
    res = model["resource"]
    members = []
    for rtype in ("google_project_iam_member", "google_bigtable_instance_iam_member",
                  "google_storage_bucket_iam_member", "google_pubsub_subscription_iam_member",
                  "google_pubsub_topic_iam_member", "google_artifact_registry_repository_iam_member",
                  "google_service_account_iam_member"):
        for name, body in res.get(rtype, {}).items():
            members.append((rtype, name, body["role"], body["member"]))
    web = [(t, r) for t, _n, r, m in members if m == "${local.web_member}"]
    assert web == [("google_bigtable_instance_iam_member", "roles/bigtable.reader")]
    project_roles = {(r, m) for t, _n, r, m in members if t == "google_project_iam_member"}
    assert project_roles == {
        ("roles/dataflow.worker", "${local.streaming_member}"),
        ("roles/dataflow.worker", "${local.recount_member}"),
        ("roles/composer.worker", "${local.composer_member}"),
        ("roles/dataflow.developer", "${local.composer_member}"),
    }
    for _t, _n, role, _m in members:
        assert role not in {"roles/owner", "roles/editor", "roles/bigtable.admin",
                            "roles/pubsub.admin", "roles/storage.admin"}, role


def test_buckets_are_private_and_have_lifecycle_rules(model):
    buckets = model["resource"]["google_storage_bucket"]
    for name, body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, name
        assert body["public_access_prevention"] == "enforced", name
        assert body.get("lifecycle_rule"), name
    rules = buckets["archive"]["lifecycle_rule"]
    archive_actions = [block(r, "action") for r in rules]
    assert {"type": "SetStorageClass", "storage_class": "NEARLINE"} in archive_actions
    # Only the writer's temp folder (hashtags/archive.py TEMP_FOLDER under the archive root) may be
    # deleted by lifecycle; the partitions never are.
    from hashtags.archive import TEMP_FOLDER

    deletes = [block(r, "condition") for r in rules if block(r, "action")["type"] == "Delete"]
    assert deletes, "stale temp files of the archive writer are cleaned up"
    assert [d.get("matches_prefix") for d in deletes] == [[f"post-events/{TEMP_FOLDER}/"]], \
        "the archive is never deleted by lifecycle, except the writer's temp folder"
    assert model["locals"]["archive_path"].endswith("/post-events")
    assert block(buckets["archive"], "versioning")["enabled"] is False


# --- checkov skips have reasons, and are listed in terraform/README.md ----------------------------------

def _skips() -> dict[str, str]:
    """{check id: reason} from terraform/.checkov.yaml (reason = the line's comment) and inline
    `checkov:skip=ID: reason` comments in terraform/ and docker/."""
    import yaml

    config_path = TERRAFORM / ".checkov.yaml"
    skips: dict[str, str] = {}
    in_list = False
    for line in config_path.read_text().splitlines():
        if line.startswith("skip-check:"):
            in_list = True
        elif in_list and line.strip() and not line[0].isspace():
            in_list = False
        elif in_list:
            m = re.match(r"\s+-\s+(CKV\w+)\s*(?:#\s*(.*))?$", line)
            if m:
                skips[m.group(1)] = (m.group(2) or "").strip()
    assert set(skips) == set(yaml.safe_load(config_path.read_text())["skip-check"])
    inline = list(TERRAFORM.glob("*.tf")) + list((ROOT / "docker").rglob("Dockerfile"))
    for path in inline:
        for m in re.finditer(r"checkov:skip=(CKV\w+):?([^\n]*)", path.read_text()):
            skips[f"{m.group(1)}@{path.relative_to(ROOT)}"] = m.group(2).strip()
    return skips


def test_every_checkov_skip_has_a_reason_and_is_in_the_readme():
    skips = _skips()
    assert skips, "no skips found: the parser is broken"
    readme = (TERRAFORM / "README.md").read_text()
    for key, reason in skips.items():
        assert len(reason) >= 30, f"{key}: skip without a real reason: {reason!r}"
        check_id = key.split("@")[0]
        assert check_id in readme, f"{check_id} is skipped but not listed in terraform/README.md"


def test_writers_route_to_one_cluster_and_the_web_tier_to_any(model):
    """DESIGN.md "Bigtable routing": the streaming job's and the nightly's Bigtable traffic goes through
    the single-cluster `writer` profile, the page reads through the multi-cluster `serving` one."""
    res = model["resource"]
    profiles = {resolve(model, b["app_profile_id"]): b for b in res["google_bigtable_app_profile"].values()}
    writer, serving = profiles[settings.WRITER_APP_PROFILE], profiles[settings.SERVING_APP_PROFILE]
    assert block(writer, "single_cluster_routing")["cluster_id"] == "${var.bigtable_clusters[0].cluster_id}"
    assert "multi_cluster_routing_use_any" not in writer
    assert serving["multi_cluster_routing_use_any"] is True and "single_cluster_routing" not in serving
    job = res["google_dataflow_flex_template_job"]["streaming"]["parameters"]
    nightly = model["locals"]["airflow_variables"]["hashtags_bigtable_app_profile"]
    web = {e["name"]: e["value"] for e in block(block(res["google_cloud_run_v2_service"]["web"], "template"),
                                                 "containers")["env"]}
    assert resolve(model, job["bigtable_app_profile"]) == resolve(model, nightly) == settings.WRITER_APP_PROFILE
    assert resolve(model, web["HASHTAGS_APP_PROFILE"]) == settings.SERVING_APP_PROFILE


def test_the_recount_identity_can_pull_its_image_and_has_no_table_admin(model):
    """Issue 18: the nightly launches in production (its Flex Template image is readable by its own
    service account, like the streaming job's) and needs data access only, never table admin."""
    res = model["resource"]
    readers = {body["member"]: body for body in res["google_artifact_registry_repository_iam_member"].values()}
    for member in ("${local.recount_member}", "${local.streaming_member}"):
        assert readers[member]["role"] == "roles/artifactregistry.reader"
        assert readers[member]["repository"] == "${google_artifact_registry_repository.images.name}"
    recount_bigtable = [(t, b["role"]) for t in res if "bigtable" in t and t.endswith("_iam_member")
                        for b in res[t].values() if b["member"] == "${local.recount_member}"]
    assert recount_bigtable == [("google_bigtable_instance_iam_member", "roles/bigtable.user")]
    assert model["locals"]["airflow_variables"]["hashtags_service_account"] == "${google_service_account.recount.email}"


def test_composer_is_sized_for_one_nightly_dag(model):
    config = block(model["resource"]["google_composer_environment"]["hashtags"], "config")
    assert config["environment_size"] == "${var.composer_environment_size}"
    for env in ("dev", "prod"):
        assert parse_file(TERRAFORM / "environments" / f"{env}.tfvars")["composer_environment_size"] == "ENVIRONMENT_SIZE_SMALL"
    workloads = block(config, "workloads_config")
    for part in ("scheduler", "triggerer", "dag_processor", "web_server", "worker"):
        sizes = block(workloads, part)
        assert sizes["cpu"] <= 1 and sizes["memory_gb"] <= 2, part
    assert block(workloads, "scheduler")["count"] == 1 and block(workloads, "worker")["max_count"] <= 2
    assert block(workloads, "triggerer")["count"] == 1, "the deferrable operator's waits run on the triggerer"
