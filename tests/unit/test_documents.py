"""The published documents in docs/ (OpenAPI of the API, AsyncAPI of the topics) are the ones
the code produces today."""

from __future__ import annotations

import json

import pytest

from schemas.events import ALL_EVENTS
from schemas.export import DOCS_DIR, render_documents
from services.common.topics import Topics

pytestmark = pytest.mark.unit


def test_the_exported_documents_are_current() -> None:
    """Fails when docs/openapi.json or docs/asyncapi.json is stale: run `make schemas`."""
    for name, text in render_documents().items():
        assert (DOCS_DIR / name).read_text() == text, f"docs/{name} is stale: run `make schemas`"


def test_the_asyncapi_document_names_every_topic_and_event() -> None:
    document = json.loads((DOCS_DIR / "asyncapi.json").read_text())
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(Topics.from_prefix("").all())
    schemas = set(document["components"]["schemas"])
    assert {event.__name__ for event in ALL_EVENTS} <= schemas


def test_the_openapi_document_lists_the_routes() -> None:
    paths = json.loads((DOCS_DIR / "openapi.json").read_text())["paths"]
    assert "/v1/accounts/{account_id}/balance" in paths
    assert "/v1/quote" in paths
