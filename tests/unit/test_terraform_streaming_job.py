"""The streaming job's count generation is tied to the job's life (terraform/dataflow.tf, issue 20).

Parsed with python-hcl2. Terraform's planning is modelled in ``plan`` with the two rules it needs,
each verified in source (docs/DEPLOY.md "Count generation" cites them):

* the provider (hashicorp/terraform-provider-google-beta, resource_dataflow_flex_template_job.go):
  a change of a ``ForceNew`` attribute (``FORCE_NEW``) replaces a streaming job; any other change
  relaunches it in place with ``update=true`` and the same name;
* terraform (internal/terraform/node_resource_abstract_instance.go): ``ignore_changes`` keeps the
  prior value on an update, while a created or replacing object is built from the configuration.

Over the job's real configuration, every attribute it sets is changed in turn: a replacement gets
a new generation, an update keeps it; a job gone from the state is created on a new one.
"""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from pipelines.options import _generation
from tests.unit.terraform_model import METADATA, ROOT, block, load_terraform

# ForceNew in the provider's schema for a streaming job (batch jobs: every field).
FORCE_NEW = {"name", "region", "project", "num_workers", "max_workers", "enable_streaming_engine"}
T0 = dt.datetime(2026, 12, 7, 21, 45, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def model() -> dict:
    return load_terraform()


def _job(model: dict) -> dict:
    return model["resource"]["google_dataflow_flex_template_job"]["streaming"]


def config_at(model: dict, when: dt.datetime, **changes) -> dict:
    """The job's arguments as a plan at ``when`` sees them: flat keys (``parameters.x``), the
    generation local evaluated (formatdate("YYYYMMDDhhmmss", plantimestamp())), ``changes`` applied."""
    job = _job(model)
    assert model["locals"]["new_job_count_generation"] == '${formatdate("YYYYMMDDhhmmss", plantimestamp())}'
    generation = when.strftime("%Y%m%d%H%M%S")
    flat = {k: v for k, v in job.items() if k not in ("parameters", "lifecycle", "depends_on", "count", "provider")}
    flat.update({f"parameters.{k}": v for k, v in job["parameters"].items()})
    local = {**model["locals"], "new_job_count_generation": generation}
    subst = lambda v: re.sub(r"\$\{local\.([a-z_]+)\}", lambda m: str(local[m.group(1)]), v) if isinstance(v, str) else v
    return {k: subst(v) for k, v in flat.items()} | changes


def ignored(model: dict) -> set[str]:
    """lifecycle.ignore_changes as flat keys: name, parameters["x"] -> parameters.x."""
    keys = block(_job(model), "lifecycle")["ignore_changes"]
    return {re.sub(r'^\$\{parameters\["([a-z_]+)"\]\}$', r"parameters.\1", k) for k in keys}


def plan(prior: dict | None, config: dict, ignore: set[str]) -> tuple[str, dict]:
    if prior is None:
        return "create", config
    proposed = {k: (prior[k] if k in ignore and k in prior else v) for k, v in config.items()}
    if any(proposed.get(a) != prior.get(a) for a in FORCE_NEW):
        return "replace", config  # built from the configuration, ignore_changes not applied
    return ("update" if proposed != prior else "no-op"), proposed


def test_the_generation_is_the_jobs_creation_time(model):
    job = _job(model)
    assert job["parameters"]["count_generation"] == "${local.new_job_count_generation}"
    assert job["name"] == "hashtags-streaming", "one name: Dataflow refuses a second active job of it"
    assert ignored(model) == {"parameters.count_generation"}
    assert "count_generation" not in model["variable"], "no operator-set generation"
    state = plan(None, config_at(model, T0), ignored(model))[1]
    assert state["parameters.count_generation"] == "20261207214500"
    # a valid --count_generation, and accepted by the template's own check
    assert _generation(state["parameters.count_generation"]) == 20261207214500
    regexes = {p["name"]: p.get("regexes", []) for p in json.loads(METADATA.read_text())["parameters"]}
    assert all(re.search(rx, state["parameters.count_generation"]) for rx in regexes["count_generation"])
    assert int(state["parameters.count_generation"]) < 2**53, "exact as a JSON number"


def test_what_replaces_the_job_changes_the_generation_and_an_update_keeps_it(model):
    ignore = ignored(model)
    state = plan(None, config_at(model, T0), ignore)[1]
    later = T0 + dt.timedelta(days=3, seconds=7)
    changed = {"max_workers": "${var.other}", "enable_streaming_engine": False, "region": "europe-west1",
               "parameters.sdk_container_image": "repo/streaming:new", "container_spec_gcs_path": "gs://x/new.json",
               "parameters.early_firing_seconds": "10", "machine_type": "n2-standard-8"}
    assert set(changed) <= set(state), "attributes the job sets"
    for attr, value in changed.items():
        action, new = plan(state, config_at(model, later, **{attr: value}), ignore)
        assert action == ("replace" if attr in FORCE_NEW else "update"), attr
        moved = new["parameters.count_generation"] != state["parameters.count_generation"]
        assert moved == (action == "replace"), attr
    assert plan(state, config_at(model, later), ignore)[0] == "no-op", "a plan later changes nothing by itself"
    # the job stopped outside terraform (drained, failed): the provider drops it from the state
    assert plan(None, config_at(model, later), ignore)[1]["parameters.count_generation"] == "20261210214507"


def test_deploy_doc_has_the_providers_table_with_its_source():
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    assert "resource_dataflow_flex_template_job.go" in text and "node_resource_abstract_instance.go" in text
    rows = dict(re.findall(r"^\| `([a-z_]+)`[^|]*\| (replace|update in place|no API call)", text, re.M))
    assert {a for a, kind in rows.items() if kind == "replace"} == FORCE_NEW
    assert rows["parameters"] == rows["container_spec_gcs_path"] == "update in place"
