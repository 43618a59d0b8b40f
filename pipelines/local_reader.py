"""The local runner's Pub/Sub read, made stoppable and able to take big messages.

The BundleBasedDirectRunner (the only local runner that reads Pub/Sub in Python) reads with its own
evaluator, ``_PubSubReadEvaluator`` (Beam 2.77, runners/direct/transform_evaluator.py): a
synchronous pull of up to 10 messages, ACKNOWLEDGED AT ONCE, then re-scheduled forever. Two
problems for a local stack, and what this module changes:

* **No clean stop.** Stopping the process loses what it pulled and acknowledged but has not
  written yet: the open hour windows and the archive's buffered lines (measured: 310 of 2,000
  events never counted, 330 never archived, issue 20). Here a stop request (:func:`request_stop`,
  wired to SIGTERM/SIGINT by ``streaming_main.main``) makes the reader pull no more and report its
  watermark at +infinity: every open window fires (accumulating: the on-time pane holds the
  window's whole count), the archive's windows are written, the runner's own completion check
  (every step's watermark at +infinity, evaluation_context.is_done) ends ``wait_until_finish``,
  and the process exits. A pull already in flight completes and its messages are processed.
* **A 4 MB receive limit.** Beam's evaluator builds a plain ``SubscriberClient()``, which on the
  emulator has gRPC's default 4 MiB receive limit: one 5-10 MB message, or two 2.5 MB ones in one
  pull, fail every pull of the subscription and stall the job. Here the client comes from
  ``hashtag_ops.pubsub_client`` (no limit, as the production transport). Production never had the
  limit: the same client against real Pub/Sub sets none, and Dataflow does not use this client at
  all (its Pub/Sub source runs in the service). A message over the contract's size
  (settings.MAX_MESSAGE_BYTES) then reaches the parse step and is dead-lettered with its reason,
  like any invalid message.

The evaluator is installed through ``TransformEvaluatorRegistry._test_evaluators_overrides``, the
hook Beam's own tests use to replace the Pub/Sub read evaluator (io/gcp/pubsub_test.py). Both are
Beam internals: ``tests/unit/test_local_reader.py`` fails on an upgrade that moves them. Only the
local runner uses this; Dataflow never sees it.
"""
from __future__ import annotations

import functools
import logging
import threading

from hashtag_ops.pubsub_client import subscriber_client

log = logging.getLogger(__name__)

PULL_MESSAGES = 10  # what Beam's evaluator pulls: one bundle
# The emulator holds an empty pull until about 1 s before its deadline (tests/integration/local_job.py):
# a short deadline keeps a stop request (checked between pulls) from waiting ~30 s.
PULL_DEADLINE_SECONDS = 5.0

_stop = threading.Event()


def request_stop() -> None:
    """Pull no more; let every step fire what it holds; the pipeline then finishes."""
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def install() -> None:
    """Replace the local runner's Pub/Sub read evaluator in this process (idempotent)."""
    from apache_beam.runners.direct.direct_runner import _DirectReadFromPubSub
    from apache_beam.runners.direct.transform_evaluator import TransformEvaluatorRegistry

    TransformEvaluatorRegistry._test_evaluators_overrides[_DirectReadFromPubSub] = _evaluator_class()


@functools.cache
def _evaluator_class():
    """Built on first use: Beam's runner modules load only in a process that runs a local job."""
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator
    from apache_beam.runners.direct.util import TransformResult
    from apache_beam.transforms.window import GlobalWindows
    from apache_beam.utils.timestamp import MAX_TIMESTAMP, Timestamp

    clients: dict[str, object] = {}
    lock = threading.Lock()

    def client_for(subscription: str):
        with lock:
            if subscription not in clients:
                clients[subscription] = subscriber_client()
            return clients[subscription]

    class StoppablePubSubReadEvaluator(_PubSubReadEvaluator):
        """Beam's evaluator with an unlimited-size client, short pulls, and a stop (module doc).
        Elements are stamped with the publish time, as Beam's are without ``timestamp_attribute``
        (the local job never passes one: streaming_main.read_post_events)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.source.timestamp_attribute:
                raise NotImplementedError("the local Pub/Sub reader stamps with the publish time: "
                                          "no timestamp_attribute (streaming_main.read_post_events)")

        def finish_bundle(self):
            if stop_requested():  # no re-scheduled root bundle, watermark +inf: the pipeline drains
                log.info("pubsub read of %s stopped: no more pulls; flushing", self._sub_name)
                return TransformResult(self, [], [], None, {None: MAX_TIMESTAMP})
            root = self._evaluation_context.create_bundle(self._root_input())  # pull again next time
            received = self._pull()
            bundles = []
            if received:
                bundle = self._evaluation_context.create_bundle(list(self._outputs)[0])
                for m in received:
                    message = PubsubMessage._from_message(m.message)
                    element = message if self.source.with_attributes else message.data
                    ts = Timestamp.from_utc_datetime(m.message.publish_time)
                    bundle.output(GlobalWindows.windowed_value(element, timestamp=ts))
                bundles.append(bundle)
            return TransformResult(self, bundles, [root], None, {None: Timestamp.now()})

        def _root_input(self):
            from apache_beam import pvalue

            if self._applied_ptransform.inputs:
                return self._applied_ptransform.inputs[0]
            return pvalue.PBegin(self._applied_ptransform.transform.pipeline)

        def _pull(self):
            """One pull, acknowledged at once (as Beam's evaluator does: the local runner has no
            checkpoint to ack at); an empty pull past its deadline is an empty answer."""
            from google.api_core.exceptions import DeadlineExceeded

            client = client_for(self._sub_name)
            try:
                response = client.pull(request={"subscription": self._sub_name, "max_messages": PULL_MESSAGES},
                                       timeout=PULL_DEADLINE_SECONDS)
            except DeadlineExceeded:
                return []
            received = list(response.received_messages)
            if received:
                client.acknowledge(request={"subscription": self._sub_name,
                                            "ack_ids": [m.ack_id for m in received]})
            return received

    return StoppablePubSubReadEvaluator
