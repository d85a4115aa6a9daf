"""Command line: `python -m app [--workers N]` serves, `python -m app migrate` migrates and exits.

Exit codes: 0 done, 1 PostgreSQL unreachable or migration failed, 2 invalid settings or usage,
3 the server failed to start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile

from pydantic import ValidationError

from app.log_config import configure_logging
from app.settings import Settings, describe_errors, get_settings

EXIT_DATABASE = 1
EXIT_SETTINGS = 2

logger = logging.getLogger("app")


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
    try:
        return get_settings()
    except ValidationError as exc:
        print(describe_errors(exc), file=sys.stderr)
        raise SystemExit(EXIT_SETTINGS) from None


def prepare_database(settings: Settings, migrate_now: bool) -> None:
    """Wait for PostgreSQL (bounded) and optionally migrate; exit 1 with a clear error if not."""
    from app.db import DatabaseUnavailableError, migrate, wait_for_database

    async def run() -> None:
        await wait_for_database(settings)
        if migrate_now:
            await migrate(settings)

    try:
        asyncio.run(run())
    except DatabaseUnavailableError as exc:
        logger.critical("start-up aborted: %s", exc)
        print(f"safeguard: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_DATABASE) from None


def serve(settings: Settings, app: object = None, workers: int | None = None) -> int:
    """Pre-flight the database, then run uvicorn. Also the entry point for test launchers."""
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
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, settings.debug)
    if args.workers is not None and args.workers < 1:
        print("safeguard: --workers must be at least 1", file=sys.stderr)
        return EXIT_SETTINGS
    if args.command == "migrate":
        prepare_database(settings, migrate_now=True)
        return 0
    return serve(settings, workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())
