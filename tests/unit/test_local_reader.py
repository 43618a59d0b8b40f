"""pipelines/local_reader.py leans on two Beam internals (its module doc): this fails on a Beam
upgrade that moves them, instead of a local stack that silently stops flushing on SIGTERM. And the
client it builds for the emulator takes messages past gRPC's default 4 MiB limit."""
from __future__ import annotations

import grpc
import pytest

from hashtag_ops import pubsub_client
from pipelines import local_reader


def test_the_beam_internals_it_replaces_are_where_it_expects_them():
    from apache_beam.runners.direct.direct_runner import _DirectReadFromPubSub
    from apache_beam.runners.direct.transform_evaluator import TransformEvaluatorRegistry, _PubSubReadEvaluator

    assert isinstance(TransformEvaluatorRegistry._test_evaluators_overrides, dict)
    local_reader.install()
    installed = TransformEvaluatorRegistry._test_evaluators_overrides[_DirectReadFromPubSub]
    assert issubclass(installed, _PubSubReadEvaluator)
    assert {"finish_bundle", "_pull"} <= set(vars(installed))


def test_the_emulator_client_has_no_receive_limit(monkeypatch):
    seen = {}
    real = grpc.insecure_channel

    def spy(target, options=None, **kwargs):
        seen[target] = dict(options or [])
        return real(target, options=options, **kwargs)

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "localhost:1")
    monkeypatch.setattr(grpc, "insecure_channel", spy)
    client = pubsub_client.subscriber_client()
    try:
        assert seen["localhost:1"]["grpc.max_receive_message_length"] == -1
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _no_stop_left_behind():
    yield
    assert not local_reader.stop_requested()
