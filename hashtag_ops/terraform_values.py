"""What terraform must agree on with the code, written as JSON for terraform to read.

    python -m hashtag_ops.terraform_values     # rewrites terraform/generated/values.json

terraform/locals.tf reads the file (``local.code = jsondecode(file(...))``) for the Pub/Sub and
Bigtable names (hashtags/settings.py), the column families and their GC rules (hashtags/layout.py,
hashtags/post_state.py, as hashtag_store.bigtable.gc_rule_for gives them to Bigtable), the
attribute Dataflow takes event time from (pipelines/streaming_main.py) and the security headers
the app sends (serving/app.py), which the edge adds to every response.
tests/unit/test_terraform_values.py fails when the file is not what this command writes.

The Content-Security-Policy depends on terraform's ``var.web_image_origins``: the file has it for
no origins and, with ``IMAGE_ORIGINS`` standing for the origins joined by spaces, for some;
``edge_headers`` checks that the app really builds it that way, so terraform's ``replace()`` gives
the app's header.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from hashtags import settings
from hashtags.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "terraform" / "generated" / "values.json"
IMAGE_ORIGINS = "__IMAGE_ORIGINS__"
# What terraform's validation admits as one image origin (all must match, RE2 and Python agree on
# these classes): printable ASCII without spaces (the app trims them), commas (it splits on them),
# semicolons or quotes (they would end the CSP directive) and braces (the load balancer reads
# {name} in a header value as one of its variables).
IMAGE_ORIGIN_PATTERNS = ("^[!-~]+$", "^[^,;'\"{}]+$")


def security_headers(origins: tuple[str, ...]) -> dict[str, str]:
    from serving.app import security_headers as app_headers

    return dict(app_headers(Settings(image_origins=origins)))


def edge_headers() -> dict:
    without = security_headers(())
    with_origins = security_headers((IMAGE_ORIGINS,))
    sample = ("https://a.example", "https://*.b.example:8443")
    joined = {name: value.replace(IMAGE_ORIGINS, " ".join(sample)) for name, value in with_origins.items()}
    if security_headers(sample) != joined or set(without) != set(with_origins):
        raise SystemExit("serving.app.security_headers no longer joins the image origins with spaces: "
                         "terraform/edge.tf cannot build the same headers")
    return {"security_headers": without, "security_headers_with_image_origins": with_origins,
            "image_origins_placeholder": IMAGE_ORIGINS, "image_origin_patterns": list(IMAGE_ORIGIN_PATTERNS)}


def gc_rules(families: dict) -> dict:
    """{family: {max_versions, max_age_hours, mode}}; mode INTERSECTION exactly when the local
    create_table builds a GCRuleIntersection (both limits: a cell goes only past both)."""
    from google.cloud.bigtable import column_family

    from hashtag_store.bigtable import gc_rule_for

    return {family: {"max_versions": rule.max_versions,
                     "max_age_hours": None if rule.max_age_days is None else rule.max_age_days * 24,
                     "mode": "INTERSECTION" if isinstance(gc_rule_for(rule), column_family.GCRuleIntersection) else None}
            for family, rule in families.items()}


def column_families() -> dict:
    from hashtags import layout, post_state

    tables = {"hashtags": gc_rules(layout.COLUMN_FAMILIES), "post_state": gc_rules(post_state.COLUMN_FAMILIES)}
    if set(tables["hashtags"]) & set(tables["post_state"]):
        raise SystemExit("a family name in both tables: terraform keys GC policies by family")
    return tables


def values() -> dict:
    from pipelines.streaming_main import EVENT_TIME_ATTRIBUTE

    return {
        "_generated_by": "python -m hashtag_ops.terraform_values: do not edit",
        "pubsub": {
            "topics": {"post_events": settings.POST_EVENTS_TOPIC, "top_posts": settings.TOP_POSTS_TOPIC,
                       "post_events_dlq": settings.POST_EVENTS_DLQ_TOPIC,
                       "top_posts_dlq": settings.TOP_POSTS_DLQ_TOPIC},
            "subscriptions": {"post_events": settings.POST_EVENTS_SUBSCRIPTION,
                              "post_events_unstamped": settings.POST_EVENTS_UNSTAMPED_SUBSCRIPTION,
                              "top_posts": settings.TOP_POSTS_SUBSCRIPTION,
                              "post_events_dlq": settings.POST_EVENTS_DLQ_SUBSCRIPTION,
                              "top_posts_dlq": settings.TOP_POSTS_DLQ_SUBSCRIPTION},
            "event_time_attribute": EVENT_TIME_ATTRIBUTE,
        },
        "bigtable": {
            "tables": {"hashtags": settings.TABLE, "post_state": settings.POST_STATE_TABLE},
            "app_profiles": {"serving": settings.SERVING_APP_PROFILE, "writer": settings.WRITER_APP_PROFILE},
            "column_families": column_families(),
        },
        "edge": edge_headers(),
    }


def render() -> str:
    return json.dumps(values(), indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def main() -> int:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
