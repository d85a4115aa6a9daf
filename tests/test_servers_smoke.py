import psycopg
import redis


def test_servers_answer(database_url, redis_server):
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select 40 + 2").fetchone() == (42,)
    client = redis.Redis.from_url(redis_server.url())
    assert client.ping() is True
