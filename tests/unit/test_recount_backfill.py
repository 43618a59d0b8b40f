"""The backfill CLI (pipelines/backfill.py): its command lines → plans (hashtags.planning), the job's
typed requests (JobConfig, handed to the launcher in-process), the archive check before anything
runs, and the exit codes over a sequence of runs (the launcher replaced by a recorder here; the
real job runs at the end of this file, in tests/integration and tests/dags)."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from hashtags.planning import JobConfig, RunPlan
from pipelines import backfill, recount_launch

D = dt.date
TODAY = D(2026, 11, 23)


def plans_for(*argv: str) -> list[RunPlan]:
    return backfill.plans(backfill.parser().parse_args(["--archive", "A", *argv]), TODAY)


def test_nightly_is_one_run_for_the_midnight():
    assert plans_for("--nightly", "--as-of", "2026-11-20") == [RunPlan("nightly", D(2026, 11, 20), None, D(2026, 11, 19))]
    assert plans_for("--nightly")[0].as_of == TODAY


def test_nightly_through_is_one_run_per_midnight_in_order():
    runs = plans_for("--nightly", "--as-of", "2026-11-20", "--through", "2026-11-22", "--dry-run")
    assert [(p.mode, p.as_of, p.dry_run) for p in runs] == [
        ("nightly", D(2026, 11, 20), True), ("nightly", D(2026, 11, 21), True), ("nightly", D(2026, 11, 22), True)]


def test_reapply_and_full_rebuild():
    assert plans_for("--reapply", "--from", "2026-11-01", "--to", "2026-11-03") == [
        RunPlan("reapply", TODAY, D(2026, 11, 1), D(2026, 11, 3))]
    assert plans_for("--from", "2026-11-01", "--to", "2026-11-03", "--as-of", "2026-11-10") == [  # --from/--to alone
        RunPlan("reapply", D(2026, 11, 10), D(2026, 11, 1), D(2026, 11, 3))]
    assert plans_for("--full-rebuild", "--as-of", "2026-11-23", "--dry-run") == [
        RunPlan("full_rebuild", TODAY, None, D(2026, 11, 22), True)]


@pytest.mark.parametrize("argv, msg", [
    ((), "give --nightly"),
    (("--full-rebuild", "--through", "2026-11-24"), "--through goes with --nightly"),
    (("--nightly", "--as-of", "2026-11-22", "--through", "2026-11-21"), "before --as-of"),
    (("--nightly", "--as-of", "2026-11-24"), "has not come yet"),
    (("--reapply",), "needs a first"),
    (("--reapply", "--from", "2026-11-03", "--to", "2026-11-01"), "after the last"),
    (("--reapply", "--from", "2026-11-22", "--to", "2026-11-23"), "not before as_of"),
    (("--full-rebuild", "--from", "2026-11-01"), "only go with reapply"),
])
def test_invalid_requests(argv, msg):
    with pytest.raises(ValueError, match=msg):
        plans_for(*argv)


def test_each_run_is_a_typed_request():
    args = backfill.parser().parse_args(["--archive", "gs://b/events", "--project", "p", "--instance", "i",
                                         "--table", "t", "--drift-threshold", "0.1", "--dry-run"])
    plan = RunPlan("reapply", TODAY, D(2026, 11, 1), D(2026, 11, 2), True)
    assert backfill.job_config(plan, args) == JobConfig(
        plan, "gs://b/events", "artifacts/drift", "i", "t", "post_state", project="p", drift_threshold=0.1)


# ---- main: archive check, sequencing, exit codes ----------------------------------------------
@pytest.fixture
def archive(tmp_path):
    for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
        (tmp_path / f"arrived={day}").mkdir()
        (tmp_path / f"arrived={day}" / "events-0.jsonl").write_text("{}\n")
    return tmp_path


@pytest.fixture
def job(monkeypatch):
    """recount_launch.run replaced by a recorder of (config, Beam args) returning the queued exit codes."""
    calls, codes = [], []

    def run(config, beam_args):
        calls.append((config, beam_args))
        code = codes.pop(0) if codes else 0
        return SimpleNamespace(exit_code=code, report={"tags_drifted": 0} if code in (0, 3) else None,
                               report_files=[], message=f"exit {code}")

    monkeypatch.setattr(recount_launch, "run", run)
    return SimpleNamespace(calls=calls, codes=codes)


def main(archive, *argv):
    return backfill.main(["--archive", str(archive), "--no-progress", *argv], today=TODAY)


def test_missing_arrival_days_stop_before_anything_runs(archive, job, caplog):
    assert main(archive, "--reapply", "--from", "2026-11-19", "--to", "2026-11-21") == 2
    assert job.calls == [] and "arrived=2026-11-19" in caplog.text
    assert main(archive, "--reapply", "--from", "2026-11-19", "--to", "2026-11-21", "--allow-missing-days") == 0
    assert len(job.calls) == 1


def test_nightly_needs_the_nights_own_arrivals(archive, job):
    assert main(archive, "--nightly", "--as-of", "2026-11-23") == 0
    assert main(archive, "--nightly", "--as-of", "2026-11-20") == 2  # arrived=2026-11-19 is empty
    assert [(c.plan.mode, c.plan.as_of) for c, _ in job.calls] == [("nightly", D(2026, 11, 23))]


def test_bad_flags_and_dates_exit_2(archive, job):
    assert main(archive, "--nightly", "--as-of", "23/11/2026") == 2
    assert main(archive, "--nightly", "--full-rebuild") == 2  # one mode only
    assert main(archive) == 2
    assert job.calls == []


def test_a_sequence_runs_in_order_and_reports_drift(archive, job):
    job.codes[:] = [0, 3, 0]
    assert main(archive, "--nightly", "--as-of", "2026-11-21", "--through", "2026-11-23") == 3
    assert [c.plan.as_of for c, _ in job.calls] == [D(2026, 11, 21), D(2026, 11, 22), D(2026, 11, 23)]


@pytest.mark.parametrize("code", [1, 2])
def test_a_failure_stops_the_sequence(archive, job, code):
    job.codes[:] = [0, code, 0]
    assert main(archive, "--nightly", "--as-of", "2026-11-21", "--through", "2026-11-23") == code
    assert len(job.calls) == 2


def test_full_rebuild_passes_beam_options_through(archive, job):
    assert main(archive, "--full-rebuild", "--as-of", "2026-11-23", "--", "--direct_num_workers=2") == 0
    config, beam_args = job.calls[0]
    assert (config.plan.mode, config.plan.as_of, beam_args) == ("full_rebuild", D(2026, 11, 23), ["--direct_num_workers=2"])


def test_full_rebuild_of_an_empty_archive_is_left_to_the_job(tmp_path, job):
    """No per-day check for a rebuild: the job refuses an archive without files (exit 2)."""
    job.codes[:] = [2]
    assert main(tmp_path, "--full-rebuild") == 2 and len(job.calls) == 1


def test_recount_template_parameters_are_the_entry_files_flags():
    """The recount's Flex Template metadata (docker/dataflow/recount-metadata.json) declares only
    flags the entry file parses (the launcher passes each parameter as --name=value), and every
    parameter a JobConfig writes that the DAG can set is declared."""
    import json
    from pathlib import Path

    meta = json.loads((Path(__file__).resolve().parents[2] / "docker" / "dataflow" / "recount-metadata.json").read_text())
    flags = set(recount_launch.PARAMETERS) | set(recount_launch.FLAGS)
    names = {p["name"] for p in meta["parameters"]}
    assert names <= flags, names - flags
    reapply = RunPlan("reapply", TODAY, D(2026, 11, 1), D(2026, 11, 2), True)
    written = JobConfig(reapply, "gs://b/a", "gs://b/r", "i", "t", "s", project="p", app_profile="writer",
                        drift_threshold=0.1).to_parameters()
    assert set(written) <= names, set(written) - names
    assert meta["streaming"] is False


# ---- the real job, through the CLI, on the emulator --------------------------------------------
def line(pid, caption, t, event="published"):
    import json

    return json.dumps({"event": event, "post_id": pid, "user_id": "u", "caption": caption,
                       "image_url": "https://img.example/a.jpg", "event_time": t, "event_id": pid + event + t})


@pytest.mark.emulator
def test_cli_modes_against_the_emulator_create_tables_and_are_exact(bigtable_emulator, table_name, tmp_path):
    """An operator's three commands on tables that do not exist yet: a full rebuild creates them, a
    nightly applies the next arrival day (a delete and a re-publish), a dry-run re-apply writes
    nothing; every total is exact after each."""
    from hashtag_store import BigtableStore, bigtable
    from tests.conftest import INSTANCE, PROJECT

    arch = tmp_path / "archive"
    days = {"2026-11-21": [line("p1", "#a #b", "2026-11-21T10:00:00Z"), line("p2", "#a", "2026-11-21T11:00:00Z"),
                           line("p2", "#a", "2026-11-21T11:00:00Z")],  # a duplicate delivery
            "2026-11-22": [line("p3", "#b", "2026-11-22T09:00:00Z")]}
    for day, lines in days.items():
        (arch / f"arrived={day}").mkdir(parents=True)
        (arch / f"arrived={day}" / "events-0.jsonl").write_text("\n".join(lines) + "\n")
    state = f"{table_name}-state"
    common = ["--archive", str(arch), "--project", PROJECT, "--instance", INSTANCE, "--table", table_name,
              "--post-state-table", state, "--report-path", str(tmp_path / "reports"), "--no-progress"]
    assert not bigtable.table_exists(PROJECT, INSTANCE, table_name)

    def totals():
        return {k: t for k, t, _ in BigtableStore(PROJECT, INSTANCE, table_name).scan_totals()}

    assert backfill.main([*common, "--full-rebuild", "--as-of", "2026-11-23"], today=D(2026, 11, 23)) == 0
    assert bigtable.table_exists(PROJECT, INSTANCE, table_name) and bigtable.table_exists(PROJECT, INSTANCE, state)
    assert totals() == {"a": 2, "b": 2}

    (arch / "arrived=2026-11-23").mkdir()
    (arch / "arrived=2026-11-23" / "events-0.jsonl").write_text("\n".join([
        line("p1", "#a #b", "2026-11-23T08:00:00Z", "deleted"), line("p4", "#c", "2026-11-23T09:00:00Z")]) + "\n")
    assert backfill.main([*common, "--nightly", "--as-of", "2026-11-24"], today=D(2026, 11, 24)) == 0
    assert totals() == {"a": 1, "b": 1, "c": 1}

    assert backfill.main([*common, "--reapply", "--from", "2026-11-21", "--to", "2026-11-23", "--dry-run"],
                         today=D(2026, 11, 24)) == 0
    assert totals() == {"a": 1, "b": 1, "c": 1}
