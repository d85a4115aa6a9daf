"""Security headers, the CORS allowlist and optional API-key auth for write endpoints."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import Message, Send

from app.errors import AppError, error_response
from app.settings import Settings

API_KEY_HEADER = "X-API-Key"
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

# The API only ever returns JSON: nothing may load, frame or run from its responses.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's Swagger UI and ReDoc pages load their assets from jsdelivr and use inline scripts;
# only those pages get this policy, and they are not served in production at all.
DOCS_CSP = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src blob:"
)
HSTS = "max-age=63072000; includeSubDomains"


def security_headers(settings: Settings, docs: bool = False) -> list[tuple[bytes, bytes]]:
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Content-Security-Policy": DOCS_CSP if docs else API_CSP,
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if settings.is_production:
        # Only production is certain to sit behind TLS; HSTS on a plain-HTTP dev host would
        # pin browsers to HTTPS for that name for two years.
        headers["Strict-Transport-Security"] = HSTS
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


class AllowlistCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, tightened so a foreign origin gets no CORS headers at all.

    Upstream adds Access-Control-Expose-Headers for any Origin, and answers a refused preflight
    with a plain-text 400 that still lists the allowed methods and headers.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        origin = request_headers["origin"]
        if not self.is_allowed_origin(origin=origin):
            return error_response(
                400, "cors_origin_refused", "Origin is not allowed", {"origin": origin[:200]}
            )
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            headers = {
                key: value
                for key, value in response.headers.items()
                if key.lower().startswith("access-control-") or key.lower() == "vary"
            }
            return error_response(
                400,
                "cors_preflight_refused",
                response.body.decode(errors="replace"),
                headers=headers,
            )
        return response

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if origin is not None and not self.is_allowed_origin(origin=origin):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("Vary", "Origin")
            await send(message)
            return
        await super().send(message, send, request_headers)


def cors_options(settings: Settings) -> dict[str, object]:
    return {
        "allow_origins": settings.allowed_origins,
        "allow_methods": ["GET", "POST", "DELETE"],
        "allow_headers": ["Content-Type", API_KEY_HEADER, "X-Request-ID"],
        "expose_headers": [
            "X-Request-ID",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "Retry-After",
        ],
        "allow_credentials": False,
        "max_age": 600,
    }


def is_valid_api_key(candidate: str, accepted: list[str]) -> bool:
    """Constant-time check against every accepted key (no early exit on a match)."""
    given = candidate.encode()
    matched = False
    for key in accepted:
        matched |= secrets.compare_digest(given, key.encode())
    return matched


_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required on write endpoints when the server has API_KEYS configured.",
)


async def require_api_key(
    request: Request, api_key: Annotated[str | None, Depends(_api_key_scheme)]
) -> None:
    """Guards write endpoints; a no-op when API_KEYS is empty (auth off)."""
    accepted = request.app.state.runtime.settings.api_keys
    if not accepted:
        return
    if api_key is None or not is_valid_api_key(api_key, accepted):
        raise AppError(
            401,
            "unauthorized",
            f"A valid {API_KEY_HEADER} header is required",
            headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'},
        )
