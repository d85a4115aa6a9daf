"""Command line: `python -m app [--workers N]` serves, `python -m app migrate` migrates and exits.

Exit codes: 0 done, 1 PostgreSQL unreachable or migration failed, 2 invalid settings or usage,
3 the server failed to start, 128 + the signal's number (143 for SIGTERM) when stopped before
serving (while waiting for PostgreSQL or migrating).

SIGTERM stops the process at every stage. Python sets no handler for it, and as PID 1 of a
container (Docker, and Kubernetes with its init containers) a process without one ignores it,
so `docker stop` or the kubelet would wait out the whole grace period before SIGKILL. A handler
is set before anything heavy is imported; the database wait and the migrations are cancelled
(their transaction rolls back); uvicorn has its own once it runs. Only the standard library is
imported at the top, so the handler is in place within the interpreter's start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from app.settings import DatabaseSettings, Settings

EXIT_DATABASE = 1
EXIT_SETTINGS = 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
T = TypeVar("T")

logger = logging.getLogger("app")


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def stop_on_signals() -> None:
    """Exit at once (128 + signal) on SIGTERM or SIGINT: the handler until the server runs."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _exit_on_signal)


@contextlib.contextmanager
def _cancel_on_signals(task: asyncio.Task[object]) -> Iterator[list[int]]:
    """Within a coroutine: SIGTERM/SIGINT cancel `task`; yields the signals received."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
    try:
        yield received
    finally:
        for sig in STOP_SIGNALS:
            # The loop puts back the default disposition, which PID 1 ignores.
            loop.remove_signal_handler(sig)
        stop_on_signals()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument(
        "command", nargs="?", choices=["serve", "migrate"], default="serve",
        help="serve (default) or migrate: apply pending migrations and exit",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: WORKERS, 1)"
    )
    return parser


def load_settings() -> Settings:
    """Settings from the environment, or one message listing every problem and exit code 2."""
    from app.settings import get_settings

    return _validated(get_settings)


def load_database_settings() -> DatabaseSettings:
    """Only what the migrations need (no REDIS_URL, no SECRET_KEY), validated the same way."""
    from app.settings import get_database_settings

    return _validated(get_database_settings)


def _validated(read: Callable[[], T]) -> T:
    from pydantic import ValidationError

    from app.settings import describe_errors

    try:
        return read()
    except ValidationError as exc:
        print(describe_errors(exc), file=sys.stderr)
        raise SystemExit(EXIT_SETTINGS) from None


def prepare_database(settings: DatabaseSettings, migrate_now: bool) -> None:
    """Wait for PostgreSQL (bounded) and optionally migrate; exit 1 with a clear error if not,
    and 128 + the signal if told to stop meanwhile."""
    from app.db import DatabaseUnavailableError, migrate, wait_for_database

    stage = "waiting for PostgreSQL"

    async def run() -> int | None:
        nonlocal stage
        task = asyncio.current_task()
        assert task is not None
        with _cancel_on_signals(task) as received:
            try:
                await wait_for_database(settings)
                if migrate_now:
                    stage = "migrating"
                    await migrate(settings)
            except (asyncio.CancelledError, Exception):
                # Whatever a cancelled wait or migration raised on its way out, the signal is
                # why it stopped.
                if not received:
                    raise
            return received[0] if received else None

    try:
        stopped_by = asyncio.run(run())
    except DatabaseUnavailableError as exc:
        logger.critical("start-up aborted: %s", exc)
        print(f"safeguard: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_DATABASE) from None
    if stopped_by is not None:
        logger.info("received %s while %s, exiting", signal.Signals(stopped_by).name, stage)
        raise SystemExit(128 + stopped_by)


def serve(settings: Settings, app: object = None, workers: int | None = None) -> int:
    """Pre-flight the database, then run uvicorn. Also the entry point for test launchers."""
    from app.log_config import configure_logging

    stop_on_signals()
    workers = workers or settings.workers
    configure_logging(settings.log_level, settings.debug)
    created_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before prometheus_client is first imported, here and in the workers
        # (they inherit the environment), hence the late imports below.
        created_dir = tempfile.mkdtemp(prefix="safeguard-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = created_dir
    try:
        # Waiting and migrating once here, before any worker exists, gives one clear error and a
        # non-zero exit when PostgreSQL is down; the workers' lifespans then find it ready.
        prepare_database(settings, migrate_now=settings.migrate_on_startup)
        from app.server import APP_FACTORY
        from app.server import serve as run_server

        return run_server(settings, app if app is not None else APP_FACTORY, workers)
    finally:
        if created_dir:
            shutil.rmtree(created_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    stop_on_signals()
    args = _parser().parse_args(argv)
    from app.log_config import configure_logging

    if args.command == "migrate":
        database = load_database_settings()
        configure_logging(database.log_level, database.debug)
        prepare_database(database, migrate_now=True)
        return 0
    settings = load_settings()
    configure_logging(settings.log_level, settings.debug)
    if args.workers is not None and args.workers < 1:
        print("safeguard: --workers must be at least 1", file=sys.stderr)
        return EXIT_SETTINGS
    return serve(settings, workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())
