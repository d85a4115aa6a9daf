"""The app's error envelope and security headers, as the app tests assert them on every error
answer."""

from __future__ import annotations

import re
from typing import Any

import httpx

ENVELOPE_KEYS = {"error_id", "error_code", "message", "timestamp", "details"}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["error_code"] == code
    assert GENERATED_ID.fullmatch(body["error_id"])
    assert response.headers["x-request-id"]
    assert "Traceback" not in response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    return body
