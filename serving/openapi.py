"""``GET /api/openapi.json``: the API's OpenAPI 3.1 document, serving/openapi.json, served as written.

The file is the source (hand-edited JSON; it is what clients and schemathesis read). Kept true by
tests/unit/test_openapi.py (every route documented and nothing else, examples and real responses
match the schemas) and tests/integration/test_api_schema.py (schemathesis over the emulator)."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, Response

DOCUMENT = Path(__file__).with_name("openapi.json").read_bytes()
PATH = "/api/openapi.json"
MAX_AGE = 300


def register(app: Flask) -> None:
    @app.get(PATH)
    def openapi_document():
        return Response(DOCUMENT, mimetype="application/json", headers={
            "Cache-Control": f"public, max-age={MAX_AGE}", "Access-Control-Allow-Origin": "*"})  # as the tag APIs
