"""Rate limiting per API key (else per client IP), counted in Redis so it holds across replicas.

A moving window: a request is allowed when fewer than `limit` requests of its bucket were
allowed in the last `window` seconds, so there is no double burst at a window's edge. The
counting is one Lua script, MOVING_WINDOW, run atomically in Redis: the decision and the
figures for the X-RateLimit-* headers in a single round trip. The `limits` library, which
parses RATE_LIMIT, needs two round trips for the same answer (a hit, then the window's stats);
one instead gave 1.25 times the reads per second (BENCHMARKS.md). This module also picks the
bucket and decides what happens when Redis cannot answer (RATE_LIMIT_FAIL_OPEN).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response
from app.security import is_valid_api_key
from app.settings import Settings

if TYPE_CHECKING:
    from app.runtime import AppRuntime

logger = logging.getLogger("app.ratelimit")

EXEMPT_PREFIXES = ("/health", "/metrics")
_NAMESPACE = "safeguard"
_WARN_EVERY_SECONDS = 10.0
IPV6_BUCKET_PREFIX = 64
"""IPv6 clients share a bucket per /64: one subscriber usually holds a whole /64, and counting
single addresses would give them 2**64 buckets."""
UNPARSABLE_CLIENT = "unparsable"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_at - time.time())))
        return headers


# KEYS[1]: the bucket, a list of the times of its allowed requests, newest first, at most
# `limit` long. ARGV: now (Unix seconds, a decimal string), limit, window (whole seconds).
# Returns {1 if allowed else 0, requests in the window now, the oldest of them (or now)}.
MOVING_WINDOW = """
local bucket = KEYS[1]
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local start = now - window

-- Full when the limit-th newest request is still inside the window.
local boundary = redis.call('LINDEX', bucket, limit - 1)
local allowed = not boundary or tonumber(boundary) < start
if allowed then
    redis.call('LPUSH', bucket, ARGV[1])
    redis.call('LTRIM', bucket, 0, limit - 1)
    redis.call('EXPIRE', bucket, window)
end

-- The entries are ordered, so binary search for the oldest one still inside the window.
local low, high, oldest_index = 0, redis.call('LLEN', bucket) - 1, -1
while low <= high do
    local mid = math.floor((low + high) / 2)
    if tonumber(redis.call('LINDEX', bucket, mid)) >= start then
        oldest_index, low = mid, mid + 1
    else
        high = mid - 1
    end
end
local oldest = ARGV[1]
if oldest_index >= 0 then
    oldest = redis.call('LINDEX', bucket, oldest_index)
end
return {allowed and 1 or 0, oldest_index + 1, oldest}
"""


class RateLimiter:
    """RATE_LIMIT over the app's Redis client, one script call per request."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        item = settings.rate_limit_item
        self.limit = item.amount
        self.window = item.get_expiry()
        self.prefix = f"{_NAMESPACE}/{self.limit}/{self.window}"
        # EVALSHA, loading the script again if Redis lost it (a restart, SCRIPT FLUSH).
        self.script = redis.register_script(MOVING_WINDOW)

    async def hit(self, key: str) -> Decision:
        allowed, count, oldest = await self.script(
            keys=[f"{self.prefix}/{key}"], args=[repr(time.time()), self.limit, self.window]
        )
        return Decision(bool(allowed), self.limit, self.limit - count, float(oldest) + self.window)


def client_key(scope: Scope, settings: Settings) -> str:
    """The bucket: a keyed hash of a *valid* API key, else the client's address.

    Only accepted keys get their own bucket; otherwise anyone could dodge the per-IP limit by
    sending a fresh made-up key with each request. The key is HMAC'd with SECRET_KEY so Redis
    never holds anything that could be replayed as a credential.
    """
    api_key = Headers(scope=scope).get("x-api-key")
    if api_key and is_valid_api_key(api_key, settings.api_keys):
        digest = hmac.new(
            settings.secret_key.get_secret_value().encode(), api_key.encode(), hashlib.sha256
        ).hexdigest()
        return f"key:{digest[:32]}"
    client = scope.get("client")
    return f"ip:{address_bucket(client[0] if client else None)}"


def address_bucket(host: str | None) -> str:
    """The client's address as a bucket name of bounded length: an IPv4 address, an IPv6 /64,
    or one shared bucket for whatever does not parse as an address (a trusted proxy's header
    is the only way such a value gets here, and it must not mint keys of its choosing)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return UNPARSABLE_CLIENT
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((int(address), IPV6_BUCKET_PREFIX), strict=False)
        return str(network)
    return str(address)


class RateLimitMiddleware:
    """Applies the limit to everything except the probes and /metrics."""

    def __init__(self, app: ASGIApp, runtime: AppRuntime) -> None:
        self.app = app
        self.runtime = runtime
        self._last_warning = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.runtime.settings
        resources = self.runtime.resources
        if (
            scope["type"] != "http"
            or not settings.rate_limit_enabled
            or resources is None
            or scope["path"].startswith(EXEMPT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return

        try:
            async with resources.redis_breaker.guard():
                decision = await resources.limiter.hit(client_key(scope, settings))
        except Exception as exc:
            if settings.rate_limit_fail_open:
                self._warn(exc)
                await self.app(scope, receive, send)
                return
            logger.error("rate limiter unavailable, refusing request (fail-closed): %r", exc)
            response = error_response(
                503,
                "rate_limiter_unavailable",
                "Rate limiting is unavailable, retry later",
                {"dependency": "redis"},
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return

        if not decision.allowed:
            self.runtime.metrics.rate_limit_rejections.inc()
            response = error_response(
                429,
                "rate_limited",
                "Too many requests, retry later",
                {"limit": settings.rate_limit},
                headers=decision.headers(),
            )
            await response(scope, receive, send)
            return

        limit_headers = decision.headers()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in limit_headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _warn(self, exc: Exception) -> None:
        # One line per interval, not one per request: an outage must not flood the logs.
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            logger.warning("rate limiter unavailable, allowing requests (fail-open): %r", exc)
