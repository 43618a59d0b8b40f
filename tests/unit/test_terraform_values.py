"""terraform/generated/values.json: what terraform reads from the code (hashtag_ops.terraform_values).

The file must be what the command writes today (regenerated and compared), terraform must read it
(``local.code``) for every name instead of spelling one out, and the edge's security headers, built
in edge.tf from the file and ``var.web_image_origins``, must be the app's for every list of origins
the variable's validation admits (its patterns are in the file too).
"""
from __future__ import annotations

import copy
import re

import pytest
from hypothesis import example, given, settings as hsettings
from hypothesis import strategies as st

from hashtag_ops import terraform_values
from hashtags import settings
from hashtags.settings import Settings
from serving.app import security_headers
from tests.unit.terraform_model import GENERATED, block, load_terraform, resolve

VALUES = terraform_values.values()  # one regeneration for the module
# (resource type, name attribute) of every resource named by the code, and the names it must give.
NAMED = {("google_pubsub_topic", "name"), ("google_pubsub_subscription", "name"),
         ("google_bigtable_table", "name"), ("google_bigtable_app_profile", "app_profile_id")}
EXPECTED_NAMES = {
    settings.POST_EVENTS_TOPIC, settings.TOP_POSTS_TOPIC, settings.POST_EVENTS_DLQ_TOPIC,
    settings.TOP_POSTS_DLQ_TOPIC, settings.POST_EVENTS_SUBSCRIPTION, settings.POST_EVENTS_UNSTAMPED_SUBSCRIPTION,
    settings.TOP_POSTS_SUBSCRIPTION, settings.POST_EVENTS_DLQ_SUBSCRIPTION, settings.TOP_POSTS_DLQ_SUBSCRIPTION,
    settings.TABLE, settings.POST_STATE_TABLE, settings.SERVING_APP_PROFILE, settings.WRITER_APP_PROFILE}


@pytest.fixture(scope="module")
def model() -> dict:
    return load_terraform()


def test_the_generated_file_is_current():
    assert GENERATED.read_text(encoding="utf-8") == terraform_values.render(), \
        "run: python -m hashtag_ops.terraform_values"


def name_problems(model: dict) -> list[str]:
    problems = []
    for rtype, attr in NAMED:
        for rname, body in model["resource"][rtype].items():
            if not re.fullmatch(r"\$\{local\.code\.[a-z_.]+\}", str(body[attr])):
                problems.append(f"{rtype}.{rname}: {attr} = {body[attr]!r} is not read from local.code")
    return problems


def test_terraform_reads_every_name_from_the_file(model):
    assert model["locals"]["code"] == '${jsondecode(file("${path.module}/generated/values.json"))}'
    assert name_problems(model) == []
    names = {resolve(model, body[attr]) for rtype, attr in NAMED for body in model["resource"][rtype].values()}
    assert names == EXPECTED_NAMES
    mutated = copy.deepcopy(model)
    mutated["resource"]["google_pubsub_topic"]["top_posts"]["name"] = "top-posts"
    assert name_problems(mutated) == ["google_pubsub_topic.top_posts: name = 'top-posts' is not read from local.code"]


def edge_security_headers(origins: list[str]) -> dict[str, str]:
    """edge.tf's local.edge_security_headers (its text is checked below), evaluated over the file."""
    edge = VALUES["edge"]
    if not origins:
        return dict(edge["security_headers"])
    return {name: value.replace(edge["image_origins_placeholder"], " ".join(origins))
            for name, value in edge["security_headers_with_image_origins"].items()}


def admitted(origins: list[str]) -> bool:
    """var.web_image_origins' validation: every origin matches every pattern of the file."""
    return all(re.search(p, o) for o in origins for p in VALUES["edge"]["image_origin_patterns"])


def test_edge_tf_builds_the_headers_and_validates_the_origins_from_the_file(model):
    expression = model["locals"]["edge_security_headers"]
    for part in ("length(var.web_image_origins) == 0 ? local.code.edge.security_headers",
                 "local.code.edge.security_headers_with_image_origins",
                 'replace(value, local.code.edge.image_origins_placeholder, join(" ", var.web_image_origins))'):
        assert part in expression, part
    (validation,) = model["variable"]["web_image_origins"]["validation"]
    assert "for p in local.code.edge.image_origin_patterns : can(regex(p, o))" in validation["condition"]


@hsettings(max_examples=80, deadline=None)
@given(st.lists(st.text(max_size=24) | st.sampled_from(["https://images.example.com", "https://*.x.example:1"]),
                max_size=4))
@example(["https://a.example", "https://b.example"])
@example(["https://a.example,https://b.example"])
@example(["https://{client_region}.example"])
def test_any_admitted_origins_give_the_apps_headers_at_the_edge(origins):
    if admitted(origins):
        # the app reads cloud_run.tf's HASHTAGS_IMAGE_ORIGINS = join(",", var.web_image_origins)
        app = Settings.from_env({"HASHTAGS_IMAGE_ORIGINS": ",".join(origins)})
        assert edge_security_headers(origins) == dict(security_headers(app))
        assert not any(c in v for v in edge_security_headers(origins).values() for c in "{}")


def test_the_validation_rejects_origins_the_app_would_read_differently():
    assert admitted(["https://images.example.com", "https://*.cdn.example:8443/p/"])
    for bad in ["https://a.example, https://b.example", "https://a.example;script-src *", " https://a.example",
                "", "https://a.example/'x'", 'https://a"', "https://ä.example", "https://{client_region}.example"]:
        assert not admitted([bad]), bad


def test_the_url_map_adds_the_headers_and_hsts_on_every_path(model):
    url_map = model["resource"]["google_compute_url_map"]["web"]
    assert "path_matcher" not in url_map and "host_rule" not in url_map, "every request takes the default route"
    dynamic = block(block(url_map, "header_action"), "dynamic")["response_headers_to_add"]
    assert dynamic["for_each"] == ('${merge(local.edge_security_headers, {"Strict-Transport-Security" = '
                                   'local.edge_strict_transport_security})}')
    content = block(dynamic, "content")
    assert content == {"header_name": "${response_headers_to_add.key}",
                       "header_value": "${response_headers_to_add.value}", "replace": True}
    hsts = model["locals"]["edge_strict_transport_security"]
    assert hsts == "max-age=31536000; includeSubDomains", "a year, subdomains, no preload"
    assert "Strict-Transport-Security" not in VALUES["edge"]["security_headers"], "the container speaks plain HTTP"


def test_cloud_run_gives_the_app_the_origins_and_no_dev_images(model):
    container = block(block(model["resource"]["google_cloud_run_v2_service"]["web"], "template"), "containers")
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HASHTAGS_IMAGE_ORIGINS"] == '${join(",", var.web_image_origins)}'
    assert "HASHTAGS_DEV_IMAGES" not in env, "production serves no generated images (Settings.dev_images)"
    assert model["variable"]["web_image_origins"]["default"] == [] and Settings().image_origins == ()


def test_the_tables_take_their_families_and_gc_rules_from_the_file(model):
    res = model["resource"]
    for table in ("hashtags", "post_state"):
        dynamic = block(res["google_bigtable_table"][table], "dynamic")["column_family"]
        assert dynamic["for_each"] == f"${{local.code.bigtable.column_families.{table}}}"
        assert block(dynamic, "content") == {"family": "${column_family.key}"}
    policy = res["google_bigtable_gc_policy"]["family"]
    assert policy["for_each"] == "${local.bigtable_gc_policies}" and policy["column_family"] == "${each.key}"
    assert policy["mode"] == "${each.value.mode}" and policy["deletion_policy"] == "ABANDON"
    assert policy["table"] == ('${each.value.table == "post_state" ? google_bigtable_table.post_state.name : '
                               'google_bigtable_table.hashtags.name}')
    rules = {name: body for d in policy["dynamic"] for name, body in d.items()}
    assert rules["max_age"]["for_each"] == "${each.value.max_age_hours == null ? [] : [each.value.max_age_hours]}"
    assert block(rules["max_age"], "content") == {"duration": "${max_age.value}h"}
    assert rules["max_version"]["for_each"] == "${each.value.max_versions == null ? [] : [each.value.max_versions]}"
    assert block(rules["max_version"], "content") == {"number": "${max_version.value}"}
    assert "bigtable_gc_policies" in model["locals"] and "merge(rule, {table = table})" in model["locals"]["bigtable_gc_policies"]
    families = VALUES["bigtable"]["column_families"]
    # 5 versions: a rerun after failed nights still finds the last recorded run's cells (issue 18)
    assert families["hashtags"]["counts"] == {"max_versions": 5, "max_age_hours": 336, "mode": "INTERSECTION"}
    assert families["post_state"] == {"s": {"max_versions": 5, "max_age_hours": None, "mode": None}}
    assert set(families["hashtags"]) == {"counts", "top", "meta", "days"}


def test_a_change_in_the_code_makes_the_file_stale(monkeypatch):
    from hashtags import layout

    current = GENERATED.read_text(encoding="utf-8")
    monkeypatch.setattr(settings, "TOP_POSTS_TOPIC", "top-posts-v2")
    assert terraform_values.render() != current
    monkeypatch.undo()
    families = dict(layout.COLUMN_FAMILIES, counts=layout.GcRule(max_versions=3, max_age_days=30))
    monkeypatch.setattr(layout, "COLUMN_FAMILIES", families)
    assert '"max_age_hours": 720' in terraform_values.render()
