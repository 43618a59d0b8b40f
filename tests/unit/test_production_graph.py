"""The streaming job's graph as Dataflow would receive it, and as the local runner runs it.

``streaming_main.make_pipeline`` is built (never run) with the production options terraform and the
Flex Template pass (``--runner=DataflowRunner``, project, region, a ``gs://`` temp location, the
worker image, ``--count_generation``), and the constructed graph (``Pipeline.to_runner_api()``, the
portable proto a runner receives) is inspected: the post-events read carries
``timestamp_attribute="event_time"`` and ``id_label="event_id"``, the workers' image is the one
given, and the hour rows are written with the given generation.

Offline construction, and what is (not) patched: Beam 2.77 validates DataflowRunner options in the
``Pipeline`` constructor (``PipelineOptionsValidator`` → ``GoogleCloudOptions.validate`` →
``_handle_temp_and_staging_locations``, options/pipeline_options.py). With a valid ``gs://`` temp
location it only asks GCS for the buckets' soft-delete policy (``_warn_if_soft_delete_policy_enabled``
→ ``GcsIO().is_soft_delete_enabled``), a warning with 20–70 s of credential and HTTP retries offline;
without one it would create a default bucket (``_create_default_gcs_bucket``). That lookup is skipped
by Beam itself when ``TestOptions.dry_run`` is set ("Used in unit testing runners without
submitting the actual job"; Beam's own dataflow_runner_test passes ``--dry_run=True``), so the
tests add ``--dry_run=True`` to the production arguments and patch NOTHING in Beam. To prove no GCS
call is left, ``GcsIO`` and the default-bucket helper are replaced by functions that fail the test
if they are called at all.
"""
from __future__ import annotations

import datetime as dt
import json
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import SetupOptions, WorkerOptions
from apache_beam.portability.api import beam_runner_api_pb2 as pb
from apache_beam.runners.dataflow.internal import apiclient

from hashtags import settings
from pipelines import streaming_main
from pipelines.archive import _ToArchiveLine, _WriteArchiveFile
from pipelines.bigtable_write import _WriteRowsFn
from pipelines.streaming import HourCountRow
from pipelines.trends import HourAccountsRow, ReviewTrends, ScoreTags
from pipelines.transforms import ParsePostEventsFn

PROJECT = "hashtags-prod"
IMAGE = f"us-central1-docker.pkg.dev/{PROJECT}/hashtags/streaming:0123456789ab"
SUB = f"projects/{PROJECT}/subscriptions"
TOPIC = f"projects/{PROJECT}/topics"
JOB_ARGS = [  # what terraform/dataflow.tf passes as Flex Template parameters
    "--bigtable_instance=hashtags-prod", "--bigtable_table=hashtags",
    f"--post_events_subscription={SUB}/post-events-streaming",
    f"--post_events_unstamped_subscription={SUB}/post-events-unstamped",
    f"--top_posts_subscription={SUB}/top-posts-streaming",
    f"--post_events_dlq_topic={TOPIC}/post-events-dlq", f"--top_posts_dlq_topic={TOPIC}/top-posts-dlq",
    "--archive_path=gs://hashtags-prod-hashtags-archive/post-events",
    "--count_generation=7",
    f"--bigtable_app_profile={settings.WRITER_APP_PROFILE}",
]
DATAFLOW_ARGS = [
    "--runner=DataflowRunner", f"--project={PROJECT}", "--region=us-central1",
    "--temp_location=gs://hashtags-prod-hashtags-dataflow-temp/streaming",
    f"--sdk_container_image={IMAGE}", "--streaming",
    "--dry_run=True",  # Beam's own switch: skips the GCS soft-delete lookup (module docstring)
]


@pytest.fixture
def no_gcs(monkeypatch):
    """Any GCS access during construction fails the test instead of retrying offline for a minute."""
    from apache_beam.io.gcp import gcsio

    def forbidden(*args, **kwargs):
        raise AssertionError("building the pipeline contacted GCS")

    monkeypatch.setattr(gcsio, "GcsIO", forbidden)
    monkeypatch.setattr(gcsio, "get_or_create_default_gcs_bucket", forbidden)


def pubsub_reads(p: beam.Pipeline) -> dict[str, pb.PubSubReadPayload]:
    """Every Pub/Sub read of the portable graph, by its transform name, with its payload."""
    proto = p.to_runner_api()
    return {t.unique_name.split("/")[0]: pb.PubSubReadPayload.FromString(t.spec.payload)
            for t in proto.components.transforms.values() if t.spec.urn == "beam:transform:pubsub_read:v1"}


def dofns(p: beam.Pipeline, cls: type) -> list:
    """The DoFn instances of class ``cls`` in the constructed graph."""
    found = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            fn = getattr(node.transform, "fn", None)
            if isinstance(fn, cls):
                found.append(fn)

    p.visit(Visitor())
    return found


def test_production_graph_reads_event_time_and_event_id(no_gcs):
    p = streaming_main.make_pipeline(DATAFLOW_ARGS + JOB_ARGS)
    assert streaming_main.on_dataflow(p)

    reads = pubsub_reads(p)
    assert set(reads) == {"ReadPostEvents", "ReadUnstampedPostEvents", "ReadTopPosts"}
    post = reads["ReadPostEvents"]
    assert post.subscription == f"{SUB}/post-events-streaming"
    assert post.timestamp_attribute == "event_time"
    assert post.id_attribute == "event_id"
    assert post.with_attributes
    # the unstamped path is read WITHOUT a timestamp attribute (it exists for messages lacking it)
    unstamped = reads["ReadUnstampedPostEvents"]
    assert unstamped.subscription == f"{SUB}/post-events-unstamped"
    assert (unstamped.timestamp_attribute, unstamped.id_attribute) == ("", "")
    assert (reads["ReadTopPosts"].timestamp_attribute, reads["ReadTopPosts"].id_attribute) == ("", "")

    # no re-stamping after the read, and the attributes are required (dead letter otherwise)
    (parse,) = dofns(p, ParsePostEventsFn)
    assert (parse._stamp, parse._require) == (False, True)
    # the hour rows carry the job's count generation, and so do the live-accounts rows (issue 19)
    assert [fn.generation for fn in dofns(p, HourCountRow)] == [7]
    assert [fn.generation for fn in dofns(p, HourAccountsRow)] == [7]
    # the trends branch: one scoring step and one review step, both reading the job's table
    assert [fn._bigtable["table_id"] for fn in dofns(p, ScoreTags) + dofns(p, ReviewTrends)] == ["hashtags", "hashtags"]
    # the archive goes straight to its final gs:// names, 8 shards (pipelines/archive.py)
    (write,) = dofns(p, _WriteArchiveFile)
    assert write._in_place and write._root == "gs://hashtags-prod-hashtags-archive/post-events"
    (to_lines,) = dofns(p, _ToArchiveLine)
    assert to_lines._shards == 8

    # the workers run the given image and install nothing at start-up
    assert p.options.view_as(WorkerOptions).sdk_container_image == IMAGE
    assert apiclient.get_container_image_from_options(p.options) == IMAGE
    setup = p.options.view_as(SetupOptions)
    assert (setup.setup_file, setup.requirements_file) == (None, None)


def bigtable_writes(p: beam.Pipeline) -> dict[str, tuple]:
    """Every Bigtable write step of the graph: its name → (table, app profile). Beam's own writer
    (``_BigTableWriteFn``, which cannot take a profile) is reported too, with profile ``None``."""
    from apache_beam.io.gcp.bigtableio import _BigTableWriteFn

    found = {}

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            fn = getattr(node.transform, "fn", None)
            if isinstance(fn, _WriteRowsFn):
                found[node.full_label] = (fn.table_id, fn.app_profile_id)
            elif isinstance(fn, _BigTableWriteFn):
                found[node.full_label] = (fn.beam_options["table_id"], None)

    p.visit(Visitor())
    return found


def test_production_graph_writes_bigtable_through_the_single_cluster_writer_profile(no_gcs):
    """DESIGN.md "Bigtable routing": every write of the streaming job names the writer profile."""
    p = streaming_main.make_pipeline(DATAFLOW_ARGS + JOB_ARGS)
    assert settings.WRITER_APP_PROFILE == "writer"
    assert bigtable_writes(p) == {"WriteCounts/Mutate": ("hashtags", "writer"),
                                  "WriteAccounts/Mutate": ("hashtags", "writer"),
                                  "WriteTrends/Mutate": ("hashtags", "writer"),
                                  "WriteTopPosts/Mutate": ("hashtags", "writer")}
    # the trends branch reads what the job wrote (relaunch seeds, review flags) on the same cluster
    assert [fn._app_profile for fn in dofns(p, ScoreTags) + dofns(p, ReviewTrends)] == ["writer", "writer"]


def test_local_graph_writes_through_the_default_profile():
    """The emulator has no app profiles: locally no profile is passed unless asked for."""
    p = streaming_main.make_pipeline(LOCAL_ARGS + [a for a in JOB_ARGS if "app_profile" not in a])
    assert set(bigtable_writes(p).values()) == {("hashtags", None)}


def test_without_dry_run_the_constructor_would_ask_gcs(no_gcs):
    """What --dry_run keeps from happening (and so what the guard would catch): the soft-delete lookup."""
    args = [a for a in DATAFLOW_ARGS if a != "--dry_run=True"]
    with pytest.raises(AssertionError, match="contacted GCS"):
        streaming_main.make_pipeline(args + JOB_ARGS)


def test_production_graph_without_an_unstamped_subscription(no_gcs):
    args = [a for a in JOB_ARGS if not a.startswith("--post_events_unstamped_subscription")]
    p = streaming_main.make_pipeline(DATAFLOW_ARGS + args + ["--count_generation=0"])
    reads = pubsub_reads(p)
    assert set(reads) == {"ReadPostEvents", "ReadTopPosts"}
    assert reads["ReadPostEvents"].id_attribute == "event_id"
    assert [fn.generation for fn in dofns(p, HourCountRow)] == [0]


LOCAL_ARGS = ["--runner=BundleBasedDirectRunner", "--streaming", "--project=local-hashtags"]


def local_pipeline_with_local_archive():
    return streaming_main.make_pipeline(LOCAL_ARGS + [a for a in JOB_ARGS if not a.startswith("--archive_path")]
                                        + ["--archive_path=.run/archive"])


def test_local_graph_has_no_id_label_and_stamps_from_the_body():
    p = streaming_main.make_pipeline(LOCAL_ARGS + JOB_ARGS)
    assert not streaming_main.on_dataflow(p)
    reads = pubsub_reads(p)
    # the unstamped subscription is a Dataflow-only path (its messages would not stall a local job)
    assert set(reads) == {"ReadPostEvents", "ReadTopPosts"}
    assert (reads["ReadPostEvents"].timestamp_attribute, reads["ReadPostEvents"].id_attribute) == ("", "")
    (parse,) = dofns(p, ParsePostEventsFn)
    assert (parse._stamp, parse._require) == (True, False)
    (write,) = dofns(local_pipeline_with_local_archive(), _WriteArchiveFile)
    assert not write._in_place  # a local path: temp file + rename


@pytest.mark.emulator
def test_local_graph_runs_on_the_direct_runner(bigtable_emulator, pubsub_emulator, tmp_path):
    """The same make_pipeline on the local runner (a subprocess, as the local stack runs it),
    against the emulators: published events end up as exact totals, a malformed one as a dead letter."""
    from devstack import processes
    from devstack.resources import ensure_all
    from hashtag_store import BigtableStore
    from hashtags import settings as hs
    from hashtags.settings import Settings
    from tests.conftest import INSTANCE
    from tests.integration.local_job import stop_jobs, wait_for_messages

    s = Settings(project="graph-hashtags", bigtable_instance=INSTANCE, table="graph")
    ensure_all(s)
    env = processes.emulator_env(pubsub_emulator.address, bigtable_emulator.address)
    proc = processes.start_streaming_job(s, tmp_path / "archive", tmp_path / "job.log", env, 1,
                                         read="post-events")
    try:
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        topic = s.topic_path(s.post_events_topic)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=1)
        when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        for i, caption in enumerate(["#graph #local", "#graph", "#Graph again"]):
            body = {"event": "published", "post_id": f"g{i}", "user_id": "u", "caption": caption,
                    "image_url": f"https://img.example/g{i}.jpg", "event_time": when}
            publisher.publish(topic, json.dumps(body).encode(), event_time=when, event_id=f"g{i}").result()
        publisher.publish(topic, b"{not json", event_id="bad").result()
        store = BigtableStore(s.project, s.bigtable_instance, s.table)
        deadline = time.monotonic() + 180
        totals = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "job.log").read_text()[-3000:]
            totals = {k: (d.total_posts if (d := store.read_page(k)) else None) for k in ("graph", "local")}
            if totals == {"graph": 3, "local": 1}:
                break
            time.sleep(1)
        assert totals == {"graph": 3, "local": 1}, (tmp_path / "job.log").read_text()[-3000:]
        dead = wait_for_messages(s.project, hs.POST_EVENTS_DLQ_SUBSCRIPTION, 1, 60, "the dead letter",
                                 tmp_path / "job.log", quiet_seconds=5)
        assert [m.data for m in dead] == [b"{not json"]
    finally:
        stop_jobs([proc])  # SIGTERM: nothing is asserted about the stop (local_job's module doc)


def test_an_in_place_update_cannot_change_the_generation(no_gcs):
    """A job launched by hand carries its generation in its name (streaming_main.generation_job_name):
    an update naming it with another generation is refused, and so is an update naming no job.
    terraform's name has no suffix; its generation is pinned by ignore_changes
    (tests/unit/test_terraform_streaming_job.py), so that update is accepted with its generation."""
    base = [a for a in JOB_ARGS if not a.startswith("--count_generation")]
    running = streaming_main.generation_job_name("hashtags-streaming", 7)
    assert running == "hashtags-streaming-g7"
    same = streaming_main.make_pipeline(DATAFLOW_ARGS + base + ["--update", f"--job_name={running}",
                                                                "--count_generation=7"])
    assert [fn.generation for fn in dofns(same, HourCountRow)] == [7]
    terraform = streaming_main.make_pipeline(DATAFLOW_ARGS + base + ["--update", "--job_name=hashtags-streaming",
                                                                     "--count_generation=7"])
    assert [fn.generation for fn in dofns(terraform, HourCountRow)] == [7]
    for name, generation in ((running, 8), ("hashtags-streaming-g7", 70), (None, 7)):
        args = ["--update", f"--count_generation={generation}"] + ([f"--job_name={name}"] if name else [])
        with pytest.raises(SystemExit, match="in-place update keeps the running job's generation"):
            streaming_main.make_pipeline(DATAFLOW_ARGS + base + args)
    # a new job (no --update) may start any generation
    fresh = streaming_main.make_pipeline(DATAFLOW_ARGS + base + ["--job_name=hashtags-streaming-g8",
                                                                 "--count_generation=8"])
    assert [fn.generation for fn in dofns(fresh, HourCountRow)] == [8]
