"""A read-through cache of single items in Redis, for ITEM_CACHE_TTL_SECONDS.

`GET /api/v1/items/{id}` answers from Redis when it holds the item's JSON, else reads
PostgreSQL and fills the entry. A delete overwrites the entry with a tombstone (ids are never
reused, so the tombstone answers 404 for as long as it lives), and reads fill with SET NX: a
read that fetched the row just before a delete committed cannot put the item back over the
tombstone. Creating an item leaves nothing to invalidate: misses (404s) are never cached.

Every Redis call goes through the Redis breaker and any failure is a miss: with Redis down the
item comes from PostgreSQL, never a 5xx. A warning is logged at most every 10 s.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from app.breaker import CircuitBreaker

logger = logging.getLogger("app.cache")

_PREFIX = "safeguard/item/"
TOMBSTONE = b"-"
_WARN_EVERY_SECONDS = 10.0


class ItemCache:
    def __init__(self, redis: Redis, breaker: CircuitBreaker, ttl_seconds: int) -> None:
        self.redis = redis
        self.breaker = breaker
        self.ttl_seconds = ttl_seconds
        self._last_warning = 0.0

    async def get(self, item_id: int) -> bytes | None:
        """The item's JSON, TOMBSTONE for a deleted item, or None (not cached, or Redis down)."""
        try:
            async with self.breaker.guard():
                return await self.redis.get(f"{_PREFIX}{item_id}")
        except Exception as error:
            self._warn("read", error)
            return None

    async def fill(self, item_id: int, body: bytes) -> None:
        try:
            async with self.breaker.guard():
                await self.redis.set(f"{_PREFIX}{item_id}", body, ex=self.ttl_seconds, nx=True)
        except Exception as error:
            self._warn("fill", error)

    async def forget(self, item_id: int) -> None:
        try:
            async with self.breaker.guard():
                await self.redis.set(f"{_PREFIX}{item_id}", TOMBSTONE, ex=self.ttl_seconds)
        except Exception as error:
            # Not throttled: each of these may leave a deleted item served until its entry
            # expires, if Redis kept its data through the outage.
            logger.warning(
                "item cache could not invalidate item %d, it may be served for up to %ds: %r",
                item_id,
                self.ttl_seconds,
                error,
            )

    def _warn(self, action: str, error: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            logger.warning("item cache could not %s, using PostgreSQL: %r", action, error)
