"""Running the app under uvicorn with a graceful, observable shutdown.

On the first SIGTERM/SIGINT the single-worker server marks the app as draining (so
/health/ready answers 503 while the listener still accepts, letting load balancers and
Kubernetes endpoints take the pod out), waits SHUTDOWN_DELAY_SECONDS, then lets uvicorn stop
accepting and finish in-flight requests within SHUTDOWN_DRAIN_SECONDS. A second signal skips the
delay. Unlike stock uvicorn it does not re-raise the signal afterwards, so a clean drain exits 0.

With --workers N uvicorn's own supervisor runs the workers: each stops accepting at once and
drains within SHUTDOWN_DRAIN_SECONDS, without the readiness delay (see app/README.md).
"""

from __future__ import annotations

import contextvars
import logging
import math
import signal
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from app.log_config import build_log_config
from app.settings import Settings

logger = logging.getLogger("app.server")

APP_FACTORY = "app.main:create_app"


def _find_runtime(app: Any) -> Any:
    # uvicorn wraps the ASGI app (proxy headers, message logger); walk down to the FastAPI app.
    for _ in range(10):
        runtime = getattr(getattr(app, "state", None), "runtime", None)
        if runtime is not None:
            return runtime
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, shutdown_delay: float) -> None:
        super().__init__(config)
        self.shutdown_delay = shutdown_delay
        self.drain_started: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs in whatever context the main thread is in, often a request's:
        # in an empty one, the shutdown's log lines carry no request's id, method or path.
        contextvars.Context().run(self._begin_shutdown, sig)

    def _begin_shutdown(self, sig: int) -> None:
        if self.drain_started is None and self.started:
            self.drain_started = time.monotonic()
            runtime = _find_runtime(self.config.loaded_app)
            if runtime is not None:
                runtime.begin_drain()
            logger.info(
                "received %s, closing the listener in %gs",
                signal.Signals(sig).name,
                self.shutdown_delay,
            )
            if self.shutdown_delay > 0:
                return
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if (
            self.drain_started is not None
            and time.monotonic() - self.drain_started >= self.shutdown_delay
        ):
            self.should_exit = True
        return await super().on_tick(counter)


def serve(settings: Settings, app: Any = APP_FACTORY, workers: int = 1) -> int:
    """Run the server until it is told to stop; returns the process exit code.

    `app` is an import string of a factory (needed for workers > 1) or an ASGI app object.
    """
    config = uvicorn.Config(
        app,
        factory=isinstance(app, str),
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_config=build_log_config(settings.log_level, settings.debug),
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_drain_seconds),
        lifespan="on",
    )
    if workers > 1:
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
        failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
        return STARTUP_FAILURE if failed else 0
    server = GracefulServer(config, shutdown_delay=settings.shutdown_delay_seconds)
    server.run()
    return 0 if server.started else STARTUP_FAILURE
