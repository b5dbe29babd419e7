"""Writes the JSON Schema of every event to schemas/json/ (`python -m schemas.export`)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import ALL_EVENTS

JSON_DIR = Path(__file__).parent / "json"


def render() -> dict[str, str]:
    """File name -> JSON Schema text, for every event type."""
    files = {}
    for event in ALL_EVENTS:
        name = event.model_fields["type"].default
        schema = event.model_json_schema(mode="validation")
        files[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (JSON_DIR / name).write_text(text)
        print(f"wrote {JSON_DIR / name}")


if __name__ == "__main__":
    main()
