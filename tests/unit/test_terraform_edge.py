"""terraform/edge.tf: what the CDN keys on and caches (issue 21), parsed with python-hcl2."""
from __future__ import annotations

import re

import pytest

from tests.unit.terraform_model import ROOT, block, load_terraform


@pytest.fixture(scope="module")
def model() -> dict:
    return load_terraform()


def cdn_policy(model: dict) -> dict:
    return block(model["resource"]["google_compute_backend_service"]["web"], "cdn_policy")


def query_parameters_the_app_reads() -> set[str]:
    """Query parameter names in the URLs the app's templates write (e.g. site.css?v=<hash>)."""
    names = set()
    for path in (ROOT / "serving" / "templates").glob("*.html"):
        names |= set(re.findall(r"[?&]([a-z_]+)=", path.read_text()))
    return names


def test_the_cache_key_keeps_only_the_query_parameters_the_app_reads(model):
    key = block(cdn_policy(model), "cache_key_policy")
    assert key["include_query_string"] is True and "query_string_blacklist" not in key
    assert key["query_string_whitelist"] == "${local.edge_cache_key_query_parameters}"
    kept = set(model["locals"]["edge_cache_key_query_parameters"])
    assert query_parameters_the_app_reads() == {"v"}
    assert kept == {"v", "limit", "offset"}, "static version + the trends list's pagination"
    assert key["include_host"] is True and key["include_protocol"] is True


def test_404s_are_cached_briefly_and_concurrent_misses_coalesce(model):
    cdn = cdn_policy(model)
    assert cdn["request_coalescing"] is True
    assert cdn["negative_caching"] is True
    policies = cdn["negative_caching_policy"]
    assert [(p["code"], p["ttl"]) for p in policies] == [(404, "${local.edge_not_found_ttl_seconds}")]
    assert 0 < model["locals"]["edge_not_found_ttl_seconds"] <= 60
