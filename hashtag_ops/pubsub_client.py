"""A Pub/Sub SubscriberClient that takes any message Pub/Sub accepts (10 MB), on the emulator too.

With ``PUBSUB_EMULATOR_HOST`` set, google-cloud-pubsub opens a plain ``grpc.insecure_channel(target)``
(google/pubsub_v1/services/subscriber/client.py), i.e. gRPC's default 4 MiB receive limit: one
message of 4 MB or more, or a pull whose messages add up to that (two 2.5 MB ones, ten 450 KB ones),
fails with RESOURCE_EXHAUSTED, on every pull of that subscription. Against real Pub/Sub the same
client's transport opens its channel with ``grpc.max_receive_message_length = -1``
(google/pubsub_v1/services/subscriber/transports/grpc.py, read in the installed 2.x), so production
never had the limit. :func:`subscriber_client` gives the emulator's channel the same options.
Used by the local job's reader (pipelines/local_reader.py) and by hashtag_ops.redrive."""
from __future__ import annotations

import os

UNLIMITED = (("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1))


def subscriber_client():
    from google.cloud import pubsub_v1

    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        return pubsub_v1.SubscriberClient()
    import grpc
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    channel = grpc.insecure_channel(host, options=list(UNLIMITED))
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
