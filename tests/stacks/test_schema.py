"""The stack files' JSON schema: the committed file is the one the settings model generates,
every stack file meets it (as .ci/run's check-jsonschema and editors check them), and it refuses
the mistakes the settings refuse that one file can show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from stacks.schema import SCHEMA_PATH, schema_text
from tests.support.mocks import STACKS

ROOT = Path(__file__).resolve().parents[2]
MODELINE = "# yaml-language-server: $schema=stacks/stack.schema.json"


def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), (
        "stacks/stack.schema.json is stale: run `python -m stacks.schema`"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_meets_the_schema_and_names_it(stack: str) -> None:
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert text.splitlines()[0] == MODELINE
    errors = [e.message for e in _validator().iter_errors(yaml.safe_load(text))]
    assert errors == []


def _errors(config: dict[str, Any]) -> list[str]:
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.validator}"
        for e in _validator().iter_errors({"config": config})
    )


def test_the_schema_refuses_unknown_keys_at_every_level_and_leaves_other_namespaces_alone() -> None:
    base = {"safeguard:app": {"image": "ghcr.io/example/safeguard-app:0.1.0"}}
    assert _errors({**base, "kubernetes:context": "kind-kind"}) == []
    assert _errors({**base, "safeguard:namspace": "x"}) == ["config: anyOf"]
    assert _errors({"safeguard:app": {**base["safeguard:app"], "replica": 3}}) == [
        "config/safeguard:app: additionalProperties"
    ]
    assert _errors({**base, "safeguard:app": {"build": True}}) == []
    assert _errors({"safeguard:app": {"replicas": 2}}) == ["config/safeguard:app: required"]


def test_the_schema_checks_formats_and_bounds_one_file_can_show() -> None:
    base = {"safeguard:app": {"image": "ghcr.io/example/safeguard-app:0.1.0"}}
    assert _errors(
        {
            **base,
            "safeguard:postgres": {"storageSize": "50GB", "backupRetentionDays": 0},
            "safeguard:namespace": "default",
            "safeguard:persistentStorage": "yes",
            "safeguard:alertWebhookCritical": {"secure": "AAABBB"},
        }
    ) == [
        "config/safeguard:namespace: not",
        "config/safeguard:persistentStorage: anyOf",
        "config/safeguard:postgres/backupRetentionDays: minimum",
        "config/safeguard:postgres/storageSize: pattern",
    ]


def test_the_schema_takes_exactly_one_source_of_the_edge_certificate() -> None:
    base = {"safeguard:app": {"image": "ghcr.io/example/safeguard-app:0.1.0"}}

    def edge(tls: dict[str, Any]) -> list[str]:
        return _errors({**base, "safeguard:edge": {"tls": tls}})

    assert edge({"secret": "edge-tls"}) == []
    assert edge({"certManager": {"issuer": "letsencrypt", "kind": "Issuer"}}) == []
    assert edge({}) == ["config/safeguard:edge/tls: anyOf"]
    assert edge({"secret": "edge-tls", "certManager": {"issuer": "letsencrypt"}}) == [
        "config/safeguard:edge/tls: anyOf"
    ]
    assert edge({"certManager": {"kind": "ClusterIssuer"}}) == ["config/safeguard:edge/tls: anyOf"]
