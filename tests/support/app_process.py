"""Helpers for the app's tests: settings for the real servers, and `python -m app` as a process.

Run as a module (`python -m tests.support.app_process`) it is a test-only launcher: the real
app from `create_app()` plus a `/test/slow` route (sleeps) and a `/test/busy` one (blocks the
event loop), served by the same entry point as `python -m app`. Production code carries no
test hooks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
from fastapi import FastAPI

from app.settings import Settings
from tests.support.servers import REPO_ROOT, free_port, wait_for_port

# The app's tests use their own Redis database so flushing it disturbs nobody else.
APP_REDIS_DB = 7
TEST_SECRET = "t" * 40


def fast_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    """Settings for in-process tests: tiny timeouts and retry budgets, a generous rate limit."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": TEST_SECRET,
        "rate_limit": "1000/minute",
        "startup_db_max_attempts": 3,
        "startup_db_wait_seconds": 5,
        "health_check_timeout_seconds": 1.0,
        "db_pool_timeout_seconds": 2,
        "db_connect_timeout_seconds": 2,
        "redis_socket_timeout_seconds": 0.3,
        "redis_connect_timeout_seconds": 0.3,
    }
    values.update(overrides)
    return Settings(**values)


def flush_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def app_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """A clean environment for `python -m app`: only what the test sets, plus PATH."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "STARTUP_DB_MAX_ATTEMPTS": "3",
        "STARTUP_DB_WAIT_SECONDS": "5",
        "SHUTDOWN_DELAY_SECONDS": "0",
        "SHUTDOWN_DRAIN_SECONDS": "10",
    }
    env.update(overrides)
    return env


def run_app(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class AppProcess:
    """A running server process on 127.0.0.1; stop() returns its exit code."""

    env: dict[str, str]
    module: str = "app"
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def port(self) -> int:
        return int(self.env["PORT"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> AppProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"app exited early:\n{self.stdout}\n{self.stderr}")
            try:
                wait_for_port(self.port, timeout=0.5)
                return self
            except TimeoutError:
                continue
        self.stop()
        raise TimeoutError(f"app did not listen in {timeout}s:\n{self.stdout}\n{self.stderr}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        out, err = self.process.communicate(timeout=timeout)
        self.stdout += out
        self.stderr += err
        return self.process.returncode

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.returncode is not None:
            return self.process.returncode  # already collected by wait()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.wait(timeout)

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.stdout.splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return lines

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)


class InProcessApp:
    """The app served in-process over httpx's ASGI transport, lifespan included.

    The app and its lifespan run on an event loop in a background thread, as they would under
    a server; the test talks to it through synchronous calls.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._lifespan: Any = None
        self._client: httpx.AsyncClient | None = None

    def _run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> InProcessApp:
        self._thread.start()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self._run(self._lifespan.__aenter__())
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._client is not None:
                self._run(self._client.aclose())
            self._run(self._lifespan.__aexit__(None, None, None))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self._client is not None, "use InProcessApp as a context manager"
        return self._run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kwargs)


def _launch_with_slow_route() -> int:
    from app.__main__ import load_settings, serve
    from app.main import create_app

    settings = load_settings()
    app = create_app(settings)

    async def slow(seconds: float = 2.0) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    async def busy(seconds: float = 2.0) -> dict[str, float]:
        # Blocks the event loop inside this request: a signal now runs in the request's context.
        time.sleep(seconds)
        return {"busy": seconds}

    app.add_api_route("/test/slow", slow, methods=["GET"])
    app.add_api_route("/test/busy", busy, methods=["GET"])
    return serve(settings, app=app, workers=1)


if __name__ == "__main__":
    sys.exit(_launch_with_slow_route())
