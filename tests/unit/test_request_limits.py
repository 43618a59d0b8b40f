"""the request size limits (serving/views.py) through create_app (Werkzeug's test client, in-memory store): the exact
boundaries, the representation of the error, and that an over-limit request never reaches the store."""
from __future__ import annotations

from hashtags.settings import Settings
from serving import create_app
from serving.views import MAX_HEADER_BYTES, MAX_URL_CHARS, header_bytes
from tests.unit.serving_fakes import FakeStore, doc


def client_and_store():
    store = FakeStore({"love": doc()})
    return create_app(Settings.from_env({}), store=store).test_client(), store


def test_url_length_boundary_counts_path_and_query():
    client, store = client_and_store()
    path = "/tags/love?"
    over = client.get(path + "q" * (MAX_URL_CHARS - len(path) + 2))  # "?" is in neither part
    assert store.reads == [], "the over-limit request read nothing"
    at_limit = client.get(path + "q" * (MAX_URL_CHARS - len(path) + 1))
    assert (at_limit.status_code, over.status_code) == (200, 414)
    assert over.headers["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in over.headers
    assert store.reads == ["love"]


def test_header_bytes_boundary_and_json_for_the_api():
    client, store = client_and_store()
    base = header_bytes(client.get("/healthz").request.environ)
    value_at_limit = "a" * (MAX_HEADER_BYTES - base - len("X-Big"))
    over = client.get("/api/tags/love", headers={"X-Big": value_at_limit + "a"})
    assert store.reads == []
    assert client.get("/api/tags/love", headers={"X-Big": value_at_limit}).status_code == 200
    assert (over.status_code, over.mimetype) == (431, "application/json")
    assert over.headers["X-Content-Type-Options"] == "nosniff"
    assert store.reads == ["love"]


def test_header_bytes_counts_names_and_values_of_http_keys_only():
    environ = {"HTTP_X_A": "12345", "HTTP_HOST": "h", "PATH_INFO": "/" * 100, "wsgi.input": object()}
    assert header_bytes(environ) == len("X_A") + 5 + len("HOST") + 1
