"""Shared fixtures: the real PostgreSQL and Redis servers, started once per test session; the app
served as a process and nginx in front of it for the edge and monitoring tests; the other
programs the tests run (promtool, amtool, openssl, nginx -t, Prometheus, Alertmanager); the
backups' tools, object store (SeaweedFS) and Pushgateway.

Which programs a test needs follows from its fixtures (PROGRAM_FIXTURES): such a test gets the
`servers` marker (the Docker tests the `docker` marker too), so `-m "not servers"` runs exactly
the tests that need nothing installed, and before the first test the session stops with one
message when a program the selected tests need is missing. A test that runs a program no fixture
of its declared fails, so the marker cannot drift from what the tests really run.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from components.nginx import render_nginx_conf
from tests.support.app_process import APP_REDIS_DB, flush_redis
from tests.support.backups import PushgatewayServer, SeaweedServer, tool_path
from tests.support.programs import (
    AGE_KEYGEN,
    ALERTMANAGER,
    AMTOOL,
    AWS,
    BACKUP_JOB_TOOLS,
    DOCKER,
    DOCKER_REGISTRY,
    HTPASSWD,
    INITDB,
    NGINX,
    OPENSSL,
    PG_CTL,
    PROMETHEUS,
    PROMTOOL,
    PUSHGATEWAY,
    REDIS_CLI,
    REDIS_SERVER,
    SKOPEO,
    WEED,
    Program,
    recording,
    runner,
)
from tests.support.servers import (
    LIVE_APP_ORIGINS,
    LIVE_APP_REDIS_DB,
    LiveApp,
    NginxServer,
    PostgresServer,
    RedisServer,
    free_port,
    new_temp_root,
    nginx_test_conf,
)

# Helpers that assert on the tests' behalf: pytest rewrites their asserts as it does the tests',
# so that a failure shows the values compared.
pytest.register_assert_rewrite("tests.support.diagnostics", "tests.support.envelope")

PROGRAM_FIXTURES: dict[str, tuple[Program, ...]] = {
    "postgres_server": (INITDB, PG_CTL),
    "redis_server": (REDIS_SERVER,),
    # tests/docker/test_app_image.py: servers with the passwords the dev stack delivers
    "dev_postgres": (INITDB, PG_CTL),
    "dev_redis": (REDIS_SERVER,),
    "redis_programs": (REDIS_SERVER, REDIS_CLI),
    "start_nginx": (NGINX,),
    "nginx": (NGINX,),
    "openssl": (OPENSSL,),
    "promtool": (PROMTOOL,),
    "amtool": (AMTOOL,),
    "prometheus_binary": (PROMETHEUS,),
    "alertmanager_binary": (ALERTMANAGER,),
    "docker_client": (DOCKER,),
    "image_registry": (DOCKER_REGISTRY, HTPASSWD, OPENSSL, SKOPEO),
    "backup_tools": BACKUP_JOB_TOOLS,
    "age_keygen": (AGE_KEYGEN,),
    "object_store": (WEED, AWS),
    "pushgateway": (PUSHGATEWAY,),
}
"""The fixtures that run a program, directly or through a server they start; a fixture that
depends on one of these (database_url, live_app, ...) needs its programs too."""
DOCKER_FIXTURES = frozenset({"docker_client"})
"""The tests that use these also get the `docker` marker."""
_NEEDS = pytest.StashKey[frozenset[Program]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: before `-m` deselects by marker.
    for item in items:
        needs = frozenset(
            program
            for name in getattr(item, "fixturenames", ())
            for program in PROGRAM_FIXTURES.get(name, ())
        )
        item.stash[_NEEDS] = needs
        if needs:
            item.add_marker(pytest.mark.servers)
        if DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


def pytest_collection_finish(session: pytest.Session) -> None:
    """One message up front when the selected tests need a program that is not installed,
    instead of the same error from every test that needs it."""
    found: dict[Program, bool] = {}
    missing: dict[Program, int] = {}
    for item in session.items:
        for program in item.stash.get(_NEEDS, frozenset()):
            if program not in found:
                found[program] = program.find() is not None
            if not found[program]:
                missing[program] = missing.get(program, 0) + 1
    if not missing:
        return
    lines = [
        f"  {program.name} ({program.source}): needed by {count} test(s)"
        for program, count in sorted(missing.items(), key=lambda entry: entry[0].name)
    ]
    steps = []
    if debian := sorted({p.package for p in missing if not p.pip}):
        steps.append(f"apt-get install {' '.join(debian)}")
    if any(p.pip for p in missing):
        steps.append("pip install -r requirements.txt")
    raise pytest.UsageError(
        "the selected tests need programs that are not installed:\n"
        + "\n".join(lines)
        + f"\ninstall them ({'; '.join(steps)}; `bash .ci/run` installs every one and "
        'runs the whole suite), or run only the tests that need none: python -m pytest -m "not '
        'servers"'
    )


def _declared(item: pytest.Item, used: set[Program]) -> None:
    undeclared = sorted(p.name for p in used - item.stash.get(_NEEDS, frozenset()))
    if undeclared:
        pytest.fail(
            f"{item.nodeid} runs {', '.join(undeclared)} without a fixture that provides it "
            "(tests/conftest.py, PROGRAM_FIXTURES): take the fixture, so that the test carries "
            "the servers marker",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with recording() as used:
        result = yield
    _declared(item, used)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with recording() as used:
        result = yield
    _declared(item, used)
    return result


@pytest.fixture(scope="session")
def promtool() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`promtool(*args)`: Prometheus's checker, its output captured."""
    return runner(PROMTOOL)


@pytest.fixture(scope="session")
def amtool() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`amtool(*args)`: Alertmanager's checker, its output captured."""
    return runner(AMTOOL)


@pytest.fixture(scope="session")
def openssl() -> str:
    """The openssl CLI (certificates, s_client, s_server)."""
    return OPENSSL.path()


@pytest.fixture(scope="session")
def nginx() -> str:
    """nginx, for the tests that run `nginx -t` or an NginxServer of their own."""
    return NGINX.path()


@pytest.fixture(scope="session")
def redis_programs() -> tuple[str, str]:
    """redis-server and redis-cli, for scripts that run them by name."""
    return REDIS_SERVER.path(), REDIS_CLI.path()


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return PROMETHEUS.path()


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return ALERTMANAGER.path()


@pytest.fixture(scope="session")
def backup_tools() -> str:
    """PATH with what the backup jobs' scripts run (tests/support/backups.py)."""
    return tool_path()


@pytest.fixture(scope="session")
def age_keygen() -> str:
    """Debian's age-keygen, which makes the tests' age key pairs."""
    return AGE_KEYGEN.path()


class _Stoppable(Protocol):
    def stop(self) -> object: ...


_S = TypeVar("_S", bound=_Stoppable)


@contextmanager
def _served(prefix: str, start: Callable[[Path], _S]) -> Iterator[_S]:
    """A server started in a temporary root of its own, stopped and its root removed after."""
    root = new_temp_root(prefix)
    server = start(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def object_store() -> Iterator[SeaweedServer]:
    """A real S3-compatible store (SeaweedFS) on 127.0.0.1, for the backups' off-site copies."""
    with _served("safeguard-s3-", lambda root: SeaweedServer(root=root).start()) as server:
        yield server


@pytest.fixture(scope="session")
def pushgateway() -> Iterator[PushgatewayServer]:
    """Debian's Pushgateway on 127.0.0.1, where the backup jobs report."""
    with _served("safeguard-pushgateway-", lambda r: PushgatewayServer(root=r).start()) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    def start(root: Path) -> PostgresServer:
        server = PostgresServer(root=root)
        server.init()
        server.start()
        return server

    with _served("safeguard-pg-", start) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    def start(root: Path) -> RedisServer:
        server = RedisServer(root=root)
        server.start()
        return server

    with _served("safeguard-redis-", start) as server:
        yield server


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        if not postgres_server.is_running():
            postgres_server.start()
        postgres_server.drop_database(name)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The app tests' Redis database, flushed for one test."""
    url = redis_server.url(APP_REDIS_DB)
    flush_redis(url)
    return url


@pytest.fixture(scope="session")
def live_app(postgres_server: PostgresServer, redis_server: RedisServer) -> Iterator[LiveApp]:
    """`python -m app` as deployed (APP_ENV=production) on a free loopback port, with its own
    database, shared by the nginx, Prometheus and metrics-contract tests; its JSON log goes to
    a file the tests read while it runs."""
    from tests.support.app_process import app_env

    name = f"edge_{uuid.uuid4().hex[:12]}"
    database = postgres_server.create_database(name)
    root = new_temp_root("safeguard-app-")
    env = app_env(
        database,
        redis_server.url(LIVE_APP_REDIS_DB),
        APP_ENV="production",
        ALLOWED_ORIGINS=",".join(LIVE_APP_ORIGINS),
        # The edge's own limit is under test; the app's must not answer first.
        RATE_LIMIT="100000/minute",
    )
    app = LiveApp(root=root, env=env)
    try:
        app.start()
        yield app
    finally:
        app.stop()
        postgres_server.drop_database(name)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def start_nginx() -> Iterator[Callable[..., NginxServer]]:
    """Starts nginx on the config `render_nginx_conf` makes of NginxConf(**fields), with the
    ports and writable paths pointed at loopback and a temp dir; stops them all at the end of the
    test module."""
    started: list[tuple[NginxServer, Path]] = []

    def start(**fields: Any) -> NginxServer:
        root = new_temp_root("safeguard-nginx-")
        server = NginxServer(root=root, config="", port=free_port())
        started.append((server, root))
        server.config = render_nginx_conf(nginx_test_conf(root, server.port, **fields))
        return server.start()

    try:
        yield start
    finally:
        for server, root in started:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)
