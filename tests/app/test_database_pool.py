"""app.db.Database against the real PostgreSQL: requests get connections in arrival order."""

from __future__ import annotations

import asyncio

from app.breaker import CircuitBreaker
from app.db import Database, is_outage, open_database
from tests.support.app_process import fast_settings

POOL_SIZE = 2
REQUESTS = 150


async def _arrival_and_service_order(db: Database) -> tuple[list[int], list[int]]:
    arrived: list[int] = []
    served: list[int] = []

    async def request(number: int) -> None:
        # Staggered arrivals, faster than two connections can serve them: a queue builds, and
        # newcomers keep arriving while connections are handed back.
        await asyncio.sleep(number * 0.002)
        arrived.append(number)
        async with db.connection() as connection:
            served.append(number)
            await connection.execute("SELECT pg_sleep(0.005)")

    await asyncio.gather(*(request(n) for n in range(REQUESTS)))
    return arrived, served


def test_connections_are_handed_out_in_arrival_order(database_url: str, redis_url: str) -> None:
    async def run() -> tuple[list[int], list[int]]:
        settings = fast_settings(database_url, redis_url, db_pool_size=POOL_SIZE)
        breaker = CircuitBreaker("postgres", failures=5, cooldown_seconds=5, is_outage=is_outage)
        db = await open_database(settings, breaker)
        try:
            return await _arrival_and_service_order(db)
        finally:
            await db.close()

    arrived, served = asyncio.run(run())
    assert served == arrived, "a request that waited longer must not be served later"
