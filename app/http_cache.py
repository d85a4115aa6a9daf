"""HTTP caching of the API's GET answers: an `ETag` (a digest of the body), `Cache-Control`,
and `304 Not Modified` when the request's `If-None-Match` names the current ETag.

The answer is still computed (the ETag is the body's digest), so a 304 saves the transfer, not
the query; Starlette has no middleware for it, and the one packaged for FastAPI (fastapi-etag)
wants a function per route that knows the ETag in advance.
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/api/"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison, a list of tags or `*`. nginx's gzip turns our strong
    tag into a weak one (W/"..."), which a client then sends back."""
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def cache_control(max_age_seconds: int) -> str:
    # no-cache: a client may keep the answer but must revalidate it (a cheap 304) each time.
    return f"max-age={max_age_seconds}" if max_age_seconds else "no-cache"


class ConditionalGetMiddleware:
    """ETag, Cache-Control and 304 for successful GET answers under /api/ (the API routes
    serve no HEAD)."""

    def __init__(self, app: ASGIApp, max_age_seconds: int) -> None:
        self.app = app
        self.cache_control = cache_control(max_age_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(API_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        if_none_match = Headers(scope=scope).get("if-none-match")
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] != 200:
                    start = None
                    await send(message)
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            etag = etag_of(body)
            headers = MutableHeaders(scope=start)
            headers["ETag"] = etag
            headers["Cache-Control"] = self.cache_control
            if if_none_match is not None and matches(if_none_match, etag):
                # A 304 carries the validators but no body and no body's headers.
                for name in ("content-length", "content-type"):
                    del headers[name]
                await send({**start, "status": 304})
                await send({"type": "http.response.body", "body": b""})
                return
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered)
