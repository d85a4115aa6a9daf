"""Two bridges to what the Python policy SDK (pulumi-policy) keeps to itself.

1. `report_advisory`: the SDK reports every violation at the policy's enforcement level, but a
   used exemption must be visible in review without blocking, i.e. an ADVISORY diagnostic from
   the exempted policy. The SDK's `report_violation` callback closes over the AnalyzeResponse it
   appends to; we let it append, then lower the new diagnostics to ADVISORY.
2. `request_secret_paths`: the SDK unwraps secret values before validators see them, yet a Docker
   env entry that comes from a Pulumi secret is exactly what `docker-no-literal-secrets` wants to
   allow. We read the secret markers from the AnalyzeRequest being served.

Both degrade safely if the SDK changes shape: the exemption is then reported at the policy's own
level (still visible), and env values count as literal. tests/test_policies.py pins both.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

# The engine's marker for secret values inside a protobuf Struct (sdk/go/common/resource/sig).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

Path = tuple[str | int, ...]


def _closure_value(function: Callable[..., Any], name: str) -> Any:
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None)
    if code is None or closure is None or name not in code.co_freevars:
        return None
    try:
        return closure[code.co_freevars.index(name)].cell_contents
    except ValueError:
        return None


def report_advisory(
    report_violation: Callable[..., None], message: str, urn: str | None = None
) -> None:
    """Reports `message` as an ADVISORY diagnostic of the calling policy, whatever its level."""
    response = _closure_value(report_violation, "response")
    if not isinstance(response, analyzer_pb2.AnalyzeResponse):
        report_violation(message, urn)
        return
    start = len(response.diagnostics)
    report_violation(message, urn)
    for diagnostic in response.diagnostics[start:]:
        diagnostic.enforcementLevel = analyzer_pb2.ADVISORY
        # Without the description prefix the SDK adds, so the message starts with "exempted:".
        diagnostic.message = message


def _secret_paths(value: Any, path: Path, found: set[Path]) -> None:
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            found.add(path)
            _secret_paths(value.get("value"), path, found)
            return
        for key, child in value.items():
            _secret_paths(child, (*path, key), found)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _secret_paths(child, (*path, index), found)


def request_secret_paths() -> set[Path] | None:
    """Property paths marked secret in the AnalyzeRequest being served; None if not found."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "Analyze":
            request = frame.f_locals.get("request")
            if isinstance(request, analyzer_pb2.AnalyzeRequest):
                found: set[Path] = set()
                _secret_paths(json_format.MessageToDict(request.properties), (), found)
                return found
        frame = frame.f_back
    return None
