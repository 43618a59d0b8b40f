"""The recount's launcher (pipelines/recount_launch.py) and its graph: the entry file's flags are
the typed request's wire form; on a template launch (a Flex Template launcher only builds and
submits the job) it returns 0 right after submission, without waiting and without reading a
report, and the graph it submitted ends with the job's own report-and-record step behind both
Bigtable writes; a production run calls no table admin."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import apache_beam as beam

from hashtags import layout, planning
from hashtags import post_state as ps
from hashtags.planning import JobConfig
from pipelines import recount, recount_launch
from pipelines.drift import DriftAccumulator, TagDrift
from pipelines.recount_steps.report import ReportSpec, report_extra
from pipelines.recount_steps.tables import Tables
from tests.unit.test_production_graph import no_gcs  # noqa: F401 (fixture: building a Dataflow graph contacts no GCS)

AS_OF = dt.date(2031, 3, 23)


class TemplateCreation:
    """What Beam 2.77's DataflowPipelineResult is without a submitted job (has_job False)."""

    has_job = False

    def wait_until_finish(self, duration=None):
        raise AssertionError("a template launch must not wait")


def labels(p: beam.Pipeline) -> list[str]:
    seen = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            seen.append(node.full_label)

        def visit_transform(self, node):
            seen.append(node.full_label)

    p.visit(Visitor())
    return seen


def config(plan: planning.RunPlan, archive: str = "gs://b/a", **kw) -> JobConfig:
    return JobConfig(plan, archive, kw.pop("report_path", "gs://b/r"), "i", "hashtags", "post_state", **kw)


def graph_config(plan: planning.RunPlan, *, fresh: bool) -> recount.RecountConfig:
    return recount.RecountConfig(plan, "/nowhere", Tables("proj", "inst", "hashtags", "post_state"),
                                 ReportSpec("/nowhere/reports"), fresh=fresh)


def test_a_template_launch_returns_0_without_waiting_or_reading_a_report(monkeypatch, tmp_path):
    plan = planning.plan_full_rebuild(AS_OF)
    graph = recount.RecountConfig(plan, str(tmp_path / "archive"), Tables("proj", "inst", "hashtags", "post_state"),
                                  ReportSpec(str(tmp_path / "reports")), fresh=True)
    monkeypatch.setattr(recount_launch, "resolve", lambda config, options: (graph, None))
    monkeypatch.setattr(recount_launch, "archive_has_files", lambda root, plan: True)
    submitted = []
    monkeypatch.setattr(beam.Pipeline, "run", lambda self, *a, **k: submitted.append(self) or TemplateCreation())

    def no_read(path):
        raise AssertionError(f"read {path}")

    monkeypatch.setattr(recount_launch, "_read_text", no_read)
    out = recount_launch.run(config(plan, str(tmp_path), report_path=str(tmp_path / "reports")))
    assert out.exit_code == recount_launch.EXIT_OK, out.message
    assert out.report is None and out.report_files == []
    assert "writes its own report" in out.message and "drift-2031-03-23.json" in out.message
    assert not (tmp_path / "reports").exists()
    names = labels(submitted[0])
    for step in ("WriteBase", "WriteStates", "AfterWrites", "ReportAndRecord"):
        assert step in names, (step, names)
    assert names.index("ReportAndRecord") > names.index("AfterWrites")


def test_the_entry_files_flags_are_the_configs_wire_form():
    """Every kind of request survives JobConfig → template parameters → the entry file's flags →
    JobConfig; Beam's options pass through; a bare flag is true."""
    reapply = planning.plan_reapply(dt.date(2031, 3, 1), dt.date(2031, 3, 2), AS_OF, dry_run=True)
    for c in (config(planning.plan_nightly(AS_OF, None)),
              config(planning.plan_full_rebuild(AS_OF), project="p", app_profile="writer", drift_threshold=0.05),
              config(reapply, worst_n=3, list_limit=7, allow_empty_archive=True)):
        argv = [f"--{k}={v}" for k, v in c.to_parameters().items()] + ["--runner=DataflowRunner", "--region=r"]
        assert recount_launch.parse_argv(argv, today=AS_OF) == (c, ["--runner=DataflowRunner", "--region=r"])
    assert config(reapply).to_parameters() == {
        "mode": "reapply", "as_of": "2031-03-23", "arrived_from": "2031-03-01", "arrived_to": "2031-03-02",
        "report_only": "true", "archive_path": "gs://b/a", "report_path": "gs://b/r", "bigtable_instance": "i",
        "bigtable_table": "hashtags", "post_state_table": "post_state"}
    bare, _ = recount_launch.parse_argv(["--mode=full_rebuild", "--archive_path=/a", "--report_only"], today=AS_OF)
    assert bare.plan == planning.plan_full_rebuild(AS_OF, dry_run=True) and bare.table == "hashtags"


def test_bad_parameters_exit_2_before_anything_runs(monkeypatch):
    monkeypatch.setattr(recount_launch, "run", lambda *a: (_ for _ in ()).throw(AssertionError("ran")))
    for argv in (["--mode=reapply", f"--as_of={AS_OF}", "--archive_path=/a", "--arrived_from=2031-03-01"],
                 ["--mode=full_rebuild", "--as_of=23/03/2031", "--archive_path=/a"],
                 ["--mode=nightly", f"--as_of={AS_OF}"],  # no archive
                 ["--mode=nightly", "--archive_path=/a", "--report_only=maybe"],
                 ["--mode=sometimes", "--archive_path=/a"]):
        assert recount_launch.main(argv) == recount_launch.EXIT_BAD_INPUT, argv


def upstream_labels(node) -> set[str]:
    """Full labels of every transform ``node`` depends on, through main AND side inputs."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        for pc in list(n.inputs) + [s.pvalue for s in n.side_inputs]:
            producer = pc.producer
            if producer is not None and producer.full_label not in seen:
                seen.add(producer.full_label)
                todo.append(producer)
    return seen


def find(p: beam.Pipeline, label: str):
    found = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if node.full_label == label:
                found.append(node)

    p.visit(Visitor())
    (node,) = found
    return node


def test_the_report_and_record_step_depends_on_both_bigtable_writes():
    """The barrier in the graph: the last step consumes (through WaitOn's side inputs) the outputs
    of both writes' ParDos, so no runner may run it before they are complete. (On FnApiRunner the
    emulator test cannot tell: there the writes are fused into stages that precede it anyway.)"""
    p = beam.Pipeline()
    recount.build_recount(p, graph_config(planning.plan_nightly(AS_OF, None), fresh=False))
    upstream = upstream_labels(find(p, "ReportAndRecord"))
    for write in ("WriteBase", "WriteStates"):
        assert any(label.startswith(write + "/") for label in upstream), (write, sorted(upstream))
    assert any(label.startswith("Bases/Drift/") for label in upstream)
    assert any(label.startswith("SumCounts/") for label in upstream)


def test_a_dry_run_graph_reports_without_writes():
    p = beam.Pipeline()
    plan = planning.plan_full_rebuild(AS_OF, dry_run=True)
    recount.build_recount(p, graph_config(plan, fresh=True))
    names = labels(p)
    assert "ReportAndRecord" in names
    assert not {"WriteBase", "WriteStates", "AfterWrites"} & set(names)


def test_only_a_result_without_a_job_is_a_template_launch():
    assert recount_launch.is_template_launch(TemplateCreation())
    assert not recount_launch.is_template_launch(SimpleNamespace(has_job=True))
    assert not recount_launch.is_template_launch(SimpleNamespace())  # FnApiRunner's result has no has_job


def test_report_extra_counts_no_written_cells_in_a_dry_run():
    acc = DriftAccumulator()
    for t in (TagDrift("a", 3, 1), TagDrift("b", 0, 2)):
        acc.add(t)
    counts = {"events_read": 7, "posts_changed": 4, "archive_files": 2}
    now = dt.datetime(2031, 3, 23, 1, tzinfo=dt.timezone.utc)
    wet = report_extra(planning.plan_full_rebuild(AS_OF), "", counts, acc, now)
    dry = report_extra(planning.plan_full_rebuild(AS_OF, dry_run=True), "", counts, acc, now)
    assert (wet["base_cells_written"], wet["state_cells_written"]) == (2, 4)
    assert (dry["base_cells_written"], dry["state_cells_written"]) == (0, 0)
    assert (wet["events_read"], wet["archive_files"], wet["state_lookup_rpcs"]) == (7, 2, 0)
    assert wet["mode"] == planning.FULL_REBUILD and wet["generated_at"] == "2031-03-23T01:00:00Z"
    assert "note" not in wet


def test_a_production_run_calls_no_table_admin(monkeypatch):
    """Against Bigtable (no emulator) the launcher reads the run records and the hidden-tags index
    through the data API (with the writers' app profile) and never creates or inspects a table:
    terraform owns the tables, and the recount identity has no table-admin role."""
    from hashtag_store import bigtable as store, post_state as state_store

    def admin(*args, **kwargs):
        raise AssertionError("table admin called in a production run")

    for name in ("create_table", "create_post_state_table", "table_exists"):
        monkeypatch.setattr(store, name, admin)
    monkeypatch.delenv("BIGTABLE_EMULATOR_HOST", raising=False)
    profiles = []
    monkeypatch.setattr(state_store, "run_records", lambda *a, app_profile=None: profiles.append(app_profile) or [
        ps.RunRecord(AS_OF - dt.timedelta(days=1), planning.NIGHTLY, dt.date(2031, 3, 20), dt.date(2031, 3, 21),
                     dt.datetime(2031, 3, 22, 3, tzinfo=dt.timezone.utc))])
    monkeypatch.setattr(recount_launch, "_hidden_tags", lambda *a: frozenset({"spam"}))
    for dry_run in (False, True):
        options = recount_launch.pipeline_options(["--project=prod"])
        graph, _ = recount_launch.resolve(config(planning.plan_nightly(AS_OF, None, dry_run=dry_run),
                                                 app_profile="writer"), options)
        assert graph.tables == Tables("prod", "i", "hashtags", "post_state", True, "writer")
        assert graph.priors.recorded_ms == {layout.to_millis(layout.midnight_utc(AS_OF - dt.timedelta(days=1)))}
        assert graph.priors.last == AS_OF - dt.timedelta(days=1) and not graph.fresh
        assert graph.plan.arrived_from == dt.date(2031, 3, 21)  # narrowed by the record
        assert graph.hidden == frozenset({"spam"})
    assert profiles == ["writer", "writer"]


def test_a_local_run_creates_its_tables(monkeypatch):
    from hashtag_store import bigtable as store, post_state as state_store

    created = []
    monkeypatch.setattr(store, "create_table", lambda p, i, t: created.append(t))
    monkeypatch.setattr(store, "create_post_state_table", lambda p, i, t: created.append(t))
    monkeypatch.setenv("BIGTABLE_EMULATOR_HOST", "localhost:1")
    monkeypatch.setattr(state_store, "run_records", lambda *a, app_profile=None: [])
    monkeypatch.setattr(recount_launch, "_hidden_tags", lambda *a: frozenset())
    request = JobConfig(planning.plan_nightly(AS_OF, None), "/tmp/a", "/tmp/r", "local", "t1", "t2")
    graph, _ = recount_launch.resolve(request, recount_launch.pipeline_options())
    assert created == ["t1", "t2"] and graph.fresh  # no record yet: the first run is a full rebuild


def test_the_production_nightly_graph_writes_through_the_single_cluster_profile(monkeypatch, no_gcs):
    """DESIGN.md "Bigtable routing": the nightly's graph, built (not run) with DataflowRunner options,
    writes every table through the app profile its prior reads use (``--app_profile=writer``)."""
    from hashtag_store import post_state as state_store
    from hashtags import settings
    from tests.unit.test_production_graph import DATAFLOW_ARGS, bigtable_writes

    monkeypatch.delenv("BIGTABLE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(state_store, "run_records", lambda *a, app_profile=None: [
        ps.RunRecord(AS_OF - dt.timedelta(days=1), planning.NIGHTLY, dt.date(2031, 3, 20), dt.date(2031, 3, 21),
                     dt.datetime(2031, 3, 22, 3, tzinfo=dt.timezone.utc))])
    monkeypatch.setattr(recount_launch, "_hidden_tags", lambda *a: frozenset())
    config_, beam_args = recount_launch.parse_argv([a for a in DATAFLOW_ARGS if a != "--streaming"] + [
        "--mode=nightly", f"--as_of={AS_OF}", "--archive_path=gs://b/a", "--report_path=gs://b/r",
        "--bigtable_instance=i", "--bigtable_table=hashtags", f"--app_profile={settings.WRITER_APP_PROFILE}"])
    options = recount_launch.pipeline_options(beam_args, project=config_.project)
    graph, _ = recount_launch.resolve(config_, options)
    p = beam.Pipeline(options=options)
    recount.build_recount(p, graph)
    writes = bigtable_writes(p)
    assert sorted(writes.values()) == [("hashtags", "writer")] * 3 + [("post_state", "writer")]
