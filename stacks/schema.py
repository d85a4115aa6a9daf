"""The JSON schema of a stack file, `Pulumi.<stack>.yaml`, generated from the settings model.

`stacks/stack.schema.json` is this schema, committed so that editors and check-jsonschema (which
`.ci/run` runs over every stack file) use it without running Python. `python -m stacks.schema`
rewrites it; a test fails when the committed file and the model disagree.

The schema checks what one file can show: every `safeguard:*` key and its type, format and
bounds. What needs the stack's name or the other keys (the environment's default, the production
rules, the pack config next to it) only `load_settings` checks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from stacks.settings import NAMESPACE, Settings

SCHEMA_PATH = Path(__file__).with_name("stack.schema.json")


def stack_file_schema() -> dict[str, Any]:
    """The schema of a whole stack file: Pulumi's own keys, and `config` with the settings."""
    settings = _untitled(Settings.model_json_schema(by_alias=True))
    keys = {f"{NAMESPACE}:{key}": value for key, value in settings["properties"].items()}
    config: dict[str, Any] = {
        "type": "object",
        "description": "The stack's config. Keys of other namespaces (kubernetes:context, ...) "
        f"belong to their providers; every {NAMESPACE}:* key must be one of these.",
        "properties": keys,
        # Any key of another namespace, but no unknown one of ours.
        "propertyNames": {"anyOf": [{"enum": list(keys)}, {"not": {"pattern": f"^{NAMESPACE}:"}}]},
    }
    if settings.get("required"):
        config["required"] = [f"{NAMESPACE}:{key}" for key in settings["required"]]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "safeguard stack file (Pulumi.<stack>.yaml)",
        "description": "Generated from stacks/settings.py by `python -m stacks.schema`; see "
        "docs/stacks.md.",
        "type": "object",
        "properties": {
            "config": config,
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
        },
        "$defs": settings.get("$defs", {}),
    }


def _untitled(schema: Any) -> Any:
    """The schema without pydantic's generated titles ("Persistentstorage"): the keys and the
    descriptions say it better. No setting is named "title"."""
    if isinstance(schema, dict):
        return {key: _untitled(value) for key, value in schema.items() if key != "title"}
    if isinstance(schema, list):
        return [_untitled(value) for value in schema]
    return schema


def schema_text() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(stack_file_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
