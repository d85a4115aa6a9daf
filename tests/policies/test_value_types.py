"""What the pack's typed field access accepts (policies/_values.py: `Findings.check_value`,
`Findings.field`) and which env names look secret (policies/secret_env.py `is_secret_name`), the
verdicts every policy builds on, pinned value by value. The modules run as in the pack: in a
Python of their own with policies/ on its path (their imports are by plain name)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.policies import PACK_DIR

_PROBE = """
import json, sys
from collections import OrderedDict
from types import MappingProxyType

sys.path.insert(0, ".")
from _sdk import Deferred
from _values import INT, MALFORMED, UNKNOWN, Findings
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
from secret_env import is_secret_name

VALUES = {
    "str": "x", "empty str": "", "dict": {"a": 1}, "ordered dict": OrderedDict(a=1),
    "mapping": MappingProxyType({"a": 1}), "deferred": Deferred(lambda: {"a": 1}),
    "list": [1], "tuple": (1,), "true": True, "false": False, "float": 1.0, "fraction": 1.5,
    "int": 1, "none": None, "unknown": UNKNOWN_STRING_VALUE,
}
KINDS = {
    "str": str, "dict": dict, "list": list, "bool": bool, "float": float,
    "int or float": (int, float), "str or bool": (str, bool), "INT": INT,
}


def outcome(result, value):
    if result is MALFORMED:
        return "malformed"
    if result is UNKNOWN:
        return "unknown"
    if result is None:
        return "none"
    return "value" if result is value else f"{type(result).__name__} {result!r}"


checked, read = {}, {}
for value_name, value in VALUES.items():
    for kind_name, kind in KINDS.items():
        findings = Findings("x")
        checked[f"{value_name} as {kind_name}"] = [
            outcome(findings.check_value(value, "p", kind), value),
            findings.violations,
        ]
    findings = Findings("x")
    read[value_name] = outcome(findings.field(value, "a", "p", (int, float)), 1)
names = json.loads(sys.stdin.read())
print(json.dumps({
    "checked": checked,
    "read": read,
    "secret": [[is_secret_name(n) for n in names] for _ in range(2)],
}))
"""

ACCEPTED = {
    ("str", "str"),
    ("empty str", "str"),
    ("dict", "dict"),
    ("ordered dict", "dict"),
    ("mapping", "dict"),
    ("deferred", "dict"),
    ("list", "list"),
    ("true", "bool"),
    ("false", "bool"),
    ("float", "float"),
    ("fraction", "float"),
    ("int", "int or float"),
    ("float", "int or float"),
    ("fraction", "int or float"),
    ("str", "str or bool"),
    ("empty str", "str or bool"),
    ("true", "str or bool"),
    ("false", "str or bool"),
}
"""Accepted as they are; `None` is missing and a sentinel unknown whatever the kind, INT takes
integral numbers as ints, everything else is malformed."""
NAMES = {
    "DB_PASSWORD": True,
    "stripeApiKey": True,
    "JWT_SECRET": True,
    "API_TOKEN": True,
    "POSTGRES_PASSWORD_FILE": False,
    "TOKEN_TTL": False,
    "ARGOCD_REDIS_KEY_PREFIX": False,
    "ARGOCD_APPLICATIONSET_CONTROLLER_TOKENREF_STRICT_MODE": False,
    "TOKEN_EXPIRY_SECONDS": False,
    "LOG_LEVEL": False,
    "PWD": False,
    "": False,
}


@pytest.fixture(scope="module")
def probed() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=PACK_DIR,
        input=json.dumps(list(NAMES)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _expected(value: str, kind: str) -> str:
    if value == "none":
        return "none"
    if value == "unknown":
        return "unknown"
    if kind == "INT":
        return {"float": "int 1", "int": "value"}.get(value, "malformed")
    return "value" if (value, kind) in ACCEPTED else "malformed"


def test_a_value_is_accepted_exactly_when_it_has_the_kind(probed: dict[str, Any]) -> None:
    outcomes = {case: outcome for case, (outcome, _) in probed["checked"].items()}

    assert len(outcomes) == 15 * 8
    assert outcomes == {case: _expected(*case.split(" as ")) for case in outcomes}, (
        "a value's verdict changed"
    )


def test_each_malformed_value_is_reported_once_naming_what_it_must_be(
    probed: dict[str, Any],
) -> None:
    reports = {case: messages for case, (outcome, messages) in probed["checked"].items()}

    assert reports["true as int or float"] == [
        "x: p is True (bool) but must be an integer or a number; the policy cannot verify "
        "this field until it has the right type."
    ]
    assert reports["list as dict"] == [
        "x: p is [1] (list) but must be an object; the policy cannot verify this field until "
        "it has the right type."
    ]
    for case, (outcome, messages) in probed["checked"].items():
        assert len(messages) == (outcome == "malformed"), case


def test_a_field_is_read_from_any_mapping_and_nothing_else(probed: dict[str, Any]) -> None:
    assert probed["read"] == {
        "str": "malformed",
        "empty str": "malformed",
        "dict": "value",
        "ordered dict": "value",
        "mapping": "value",
        "deferred": "value",
        "list": "malformed",
        "tuple": "malformed",
        "true": "malformed",
        "false": "malformed",
        "float": "malformed",
        "fraction": "malformed",
        "int": "malformed",
        "none": "none",
        "unknown": "malformed",
    }


def test_a_name_looks_secret_the_same_every_time_it_is_asked(probed: dict[str, Any]) -> None:
    first, again = probed["secret"]

    assert dict(zip(NAMES, first, strict=True)) == NAMES
    assert again == first
