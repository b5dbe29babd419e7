"""Writes the published documents (`make schemas`, i.e. `python -m schemas.export`): the JSON
Schema of every event to schemas/json/, the HTTP API's OpenAPI document to docs/openapi.json
and the topics' AsyncAPI document to docs/asyncapi.json. Tests fail when any is stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.events import ALL_EVENTS

JSON_DIR = Path(__file__).parent / "json"
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"


def as_text(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render() -> dict[str, str]:
    """File name -> JSON Schema text, for every event type."""
    files = {}
    for event in ALL_EVENTS:
        name = event.model_fields["type"].default
        files[f"{name}.json"] = as_text(event.model_json_schema(mode="validation"))
    return files


def render_openapi() -> str:
    """The API's OpenAPI document as the app serves it at /openapi.json."""
    from services.api.app import create_app
    from services.common.settings import Settings

    # Tokens only decide who may call a route, not which routes exist.
    app = create_app(Settings(ledger_api_auth="disabled"))
    return as_text(app.openapi())


def render_asyncapi() -> str:
    from schemas.asyncapi import document

    return as_text(document())


def render_documents() -> dict[str, str]:
    """File name in docs/ -> text."""
    return {"openapi.json": render_openapi(), "asyncapi.json": render_asyncapi()}


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    written = [(JSON_DIR / name, text) for name, text in render().items()]
    written += [(DOCS_DIR / name, text) for name, text in render_documents().items()]
    for path, text in written:
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
