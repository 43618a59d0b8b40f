"""serving/openapi.json is true: a valid OpenAPI 3.1 document, its examples match its schemas, every
route of the app is documented (and nothing else), and real responses (the Flask test client over
an in-memory store) match the documented status, headers and body schema of their operation.
The same document drives the schemathesis run over the emulator (tests/integration/test_api_schema.py)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
# schemathesis's own copy of the OpenAPI 3.1 meta-schema (the OAI's schemas/v3.1/schema.yaml, as
# compiled by schemathesis 4.32.5: schemathesis/specs/openapi/definitions.py)
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from hashtags.layout import Flags, HourUse, DayUse, PageDocument, RelatedTag, TopPost
from hashtags.settings import Settings
from serving import create_app
from serving.documents import api_document
from serving.views import REPRESENTATIONS
from tests.unit.serving_fakes import FakeStore, doc

DOC_PATH = Path(__file__).resolve().parents[2] / "serving" / "openapi.json"
OPENAPI = json.loads(DOC_PATH.read_text())
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
UNDOCUMENTED = {"/static/<path:filename>"}  # Flask's static files: not part of the API


def validator(component: str) -> jsonschema_rs.Validator:
    """A 2020-12 validator for one component, resolving $refs inside the whole document."""
    return jsonschema_rs.Draft202012Validator({**OPENAPI, "$ref": f"#/components/schemas/{component}"},
                                              validate_formats=True)


def response_schema(path: str, status: int, media: str):
    content = OPENAPI["paths"][path]["get"]["responses"][str(status)].get("content", {})
    if media not in content:
        return None
    return jsonschema_rs.Draft202012Validator({**OPENAPI, **content[media]["schema"]}, validate_formats=True)


def test_document_is_valid_openapi_31():
    OPENAPI_31_VALIDATOR.validate(OPENAPI)
    assert OPENAPI["openapi"] == "3.1.0"
    for name, schema in OPENAPI["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_examples_match_their_schemas():
    n = 0
    for path, item in OPENAPI["paths"].items():
        for status, resp in item["get"]["responses"].items():
            for media, c in resp.get("content", {}).items():
                if "example" in c:
                    response_schema(path, int(status), media).validate(c["example"])
                    n += 1
        for param in item["get"].get("parameters", []):
            for ex in param.get("examples", {}).values():
                assert jsonschema_rs.is_valid(param["schema"], ex["value"])
                n += 1
    assert n == 9 + 3 * 5


def test_every_route_is_documented_and_every_documented_path_is_a_route():
    """The tag routes are views.REPRESENTATIONS (answered in front of Flask); the rest is Flask's url_map."""
    app = create_app(Settings(), FakeStore())
    routes = ({r.rule for r in app.url_map.iter_rules()} - UNDOCUMENTED) | {rep.prefix + "<name>" for rep in REPRESENTATIONS}
    documented = {re.sub(r"\{(\w+)\}", r"<\1>", p) for p in OPENAPI["paths"]}
    assert routes == documented
    for rule in app.url_map.iter_rules():
        if rule.rule in UNDOCUMENTED:
            continue
        path = re.sub(r"<(\w+)>", r"{\1}", rule.rule)
        assert set(OPENAPI["paths"][path]) == {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}


def test_the_served_document_is_this_file():
    client = create_app(Settings(), FakeStore()).test_client()
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json() == OPENAPI


def full_doc() -> PageDocument:
    hours = tuple(HourUse(NOW.replace(minute=0) - dt.timedelta(hours=h), 3 + h) for h in range(30, -1, -1))
    days = tuple(DayUse(dt.date(2026, 11, d), 40 + d, None if d == 29 else d) for d in range(24, 30))
    return dataclasses.replace(
        doc("love", "Love", 1_234_567), hours=hours, days=days,
        base_as_of=dt.datetime(2026, 11, 30, tzinfo=UTC),
        related=(RelatedTag("heart", 120), RelatedTag("ราตรีสวัสดิ์", 4)),
        related_as_of=dt.datetime(2026, 11, 30, tzinfo=UTC))


def test_api_document_matches_the_schema():
    validator("TagDocument").validate(api_document(full_doc(), NOW))
    validator("TagDocument").validate(api_document(PageDocument("new", "new", 1), NOW))


STORE_DOCS = {
    "love": full_doc(),
    "bare": PageDocument("bare", "bare", 1),  # no history, no related, no top posts
    "zero": PageDocument("zero", "zero", 0),  # not listed: 404 (serving.views.listed)
    "spicy": dataclasses.replace(doc("spicy", "Spicy", 9), flags=Flags(sensitive=True)),
    "gone": dataclasses.replace(doc("gone", "Gone", 9), flags=Flags(hidden=True)),
}
CASES = [  # path, expected status
    ("/tags/love", 200), ("/tags/Love", 301), ("/tags/nosuch", 404), ("/tags/gone", 404), ("/tags/spicy", 200),
    ("/tags/%3Cx%3E", 404), ("/api/tags/love", 200), ("/api/tags/bare", 200), ("/api/tags/zero", 404), ("/tags/bare", 200), ("/api/tags/LOVE", 301),
    ("/api/tags/nosuch", 404), ("/api/tags/gone", 404), ("/api/tags/%3Cx%3E", 404),
    ("/api/v1/tags/love", 200), ("/api/v1/tags/%23love", 301), ("/api/v1/tags/nosuch", 404),
    ("/api/v1/tags/gone", 404), ("/api/v1/tags/%3Cx%3E", 404), ("/api/openapi.json", 200),
    ("/healthz", 200), ("/readyz", 200),
    ("/tags/" + "a" * 9000, 414), ("/api/tags/" + "a" * 9000, 414), ("/api/v1/tags/" + "a" * 9000, 414),
]


def documented_path(path: str) -> str:
    for p in OPENAPI["paths"]:
        if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", p), path):
            return p
    raise AssertionError(f"{path} matches no documented path")


def check(resp, path: str) -> None:
    op = documented_path(path)
    responses = OPENAPI["paths"][op]["get"]["responses"]
    assert str(resp.status_code) in responses, (path, resp.status_code)
    spec = responses[str(resp.status_code)]
    for name, h in spec.get("headers", {}).items():
        header = OPENAPI["components"]["headers"][h["$ref"].rsplit("/", 1)[1]]
        value = resp.headers.get(name)
        assert value is not None or not header["required"], (path, name)
        if value is not None:
            assert jsonschema_rs.is_valid(header["schema"], value), (path, name, value)
    if resp.status_code in (301, 304):
        assert resp.get_data() == b""
        return
    assert resp.mimetype in spec["content"], (path, resp.mimetype)
    if resp.mimetype == "application/json":
        response_schema(op, resp.status_code, resp.mimetype).validate(resp.get_json())


@pytest.mark.parametrize("path, status", CASES, ids=[p[:40] for p, _ in CASES])
def test_responses_match_the_document(path, status):
    client = create_app(Settings(), FakeStore(STORE_DOCS), clock=lambda: 0).test_client()
    resp = client.get(path)
    assert resp.status_code == status
    check(resp, path)
    if status == 200 and "ETag" in resp.headers:
        again = client.get(path, headers={"If-None-Match": resp.headers["ETag"]})
        assert again.status_code == 304
        check(again, path)


@pytest.mark.parametrize("path", ["/tags/love", "/api/tags/love", "/api/v1/tags/love", "/readyz"])
def test_outage_responses_match_the_document(path):
    store = FakeStore(STORE_DOCS)
    store.down = True
    resp = create_app(Settings(), store).test_client().get(path)
    assert resp.status_code == 503
    check(resp, path)


@pytest.mark.parametrize("path", ["/tags/love", "/api/tags/love", "/api/v1/tags/love"])
def test_last_good_copy_during_an_outage_matches_the_document(path):
    store = FakeStore(STORE_DOCS)
    now = [0.0]
    client = create_app(Settings(cache_ttl_seconds=5.0), store, clock=lambda: now[0]).test_client()
    assert client.get(path).status_code == 200
    store.down, now[0] = True, 6.0  # expired entry, store failing: the stale copy
    resp = client.get(path)
    assert resp.status_code == 503 and resp.headers["X-Cache"] == "stale"
    check(resp, path)
    if path == "/api/tags/love":
        assert resp.get_json()["stale"] is True and resp.get_json()["total_posts"] == 1_234_567
    elif path == "/api/v1/tags/love":
        assert resp.get_json() == {"error": "unavailable"}
    else:
        assert "This page may be out of date" in resp.get_data(as_text=True)
