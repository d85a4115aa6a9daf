"""The app's image, built from app/Dockerfile with BuildKit on a base made without a registry,
then run the way the dev stack runs it: migrate, then the app, with exactly the settings the
dev stack renders (read from the program under mocks), their secrets delivered as files by the
app's carrier. Only the port (a free one, on loopback) and the host and port in the database
and Redis URLs (the tests' own servers) are adapted.

The servers authenticate with what the dev stack delivers too: PostgreSQL's superuser and
Redis's password are the ones their own containers read from their secret files, through the
variables the dev stack sets (POSTGRES_PASSWORD_FILE, REDIS_PASSWORD_FILE), as their users.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import docker
import httpx
import psycopg
import pytest
from packaging.utils import canonicalize_name

from app.db import MIGRATION_LOCK_ID
from tests.support.dockerd import (
    PYTHON_BASE_IMAGE,
    Created,
    build_app_image,
    build_context_copy,
    carry,
    create_container,
    diff,
    image_files,
    own_volumes,
    pip_ca_bundle,
    wait_healthy,
)
from tests.support.load import Load, wait_for
from tests.support.locks import locked_versions
from tests.support.mocks import StackRun, unwrap
from tests.support.servers import PostgresServer, RedisServer, free_port, new_temp_root

# The first test's set-up may make the base image (debootstrap) and build the app's.
pytestmark = pytest.mark.timeout(600)

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


def _rendered(stack: StackRun, name: str) -> dict[str, Any]:
    return next(
        unwrap(r.inputs)
        for r in stack.of_type("index/container:Container")
        if unwrap(r.inputs)["name"] == name
    )


@dataclass(frozen=True)
class Adapted:
    """Rendered inputs with the port and HOST pointed at the tests."""

    envs: list[str]
    healthcheck: dict[str, Any] | None
    port: int


def adapt(inputs: dict[str, Any]) -> Adapted:
    env = dict(e.split("=", 1) for e in inputs["envs"])
    assert not {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "API_KEYS"} & set(env)
    port = free_port()
    rendered_port = env.get("PORT")
    if rendered_port is not None:
        env["PORT"] = str(port)
        # The dev stack's network gives the container its own loopback; the host's is shared.
        env["HOST"] = "127.0.0.1"
    check = inputs.get("healthcheck")
    if check is not None and rendered_port is not None:
        check = {
            **check,
            "tests": [t.replace(f":{rendered_port}/", f":{port}/") for t in check["tests"]],
        }
    return Adapted([f"{k}={v}" for k, v in env.items()], check, port)


def app_secrets(
    client: docker.DockerClient,
    stack: StackRun,
    busybox: str,
    *,
    database_url: Callable[[str], str],
    redis_url: Callable[[str], str],
) -> dict[str, str]:
    """The app's carrier with its secret files delivered into volumes of the test's own, the
    URLs in them passed through `database_url` and `redis_url` (rendered URL -> the tests');
    returns the rendered volume names -> the test's."""
    carrier = _rendered(stack, "safeguard-dev-app-files")
    run = uuid.uuid4().hex[:6]
    volumes = own_volumes(client, run, carrier)
    urls = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}

    def content(file: str, text: str) -> str:
        change = urls.get(file.rsplit("/", 1)[-1])
        return change(text) if change is not None else text

    carry(
        client, carrier, image=busybox, name=f"sgtest-{run}-app-files", volume_names=volumes,
        content=content,
    )  # fmt: skip
    return volumes


def on_loopback(url: str, port: int) -> str:
    """`url` with only its host and port moved to 127.0.0.1:`port`: user, password, path kept."""
    parts = urlsplit(url)
    credentials, _, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


def read_secret_file(
    client: docker.DockerClient, stack: StackRun, busybox: str, service: str, variable: str
) -> str:
    """What the service's main container reads from the file `variable` names: its carrier's
    uploads delivered into volumes of the test's own, then a stand-in with the container's
    rendered user, env, mounts and read-only root prints the file."""
    carrier = _rendered(stack, f"safeguard-dev-{service}-files")
    main = _rendered(stack, f"safeguard-dev-{service}")
    run = uuid.uuid4().hex[:6]
    volumes = own_volumes(client, run, carrier, main)
    carry(
        client, carrier, image=busybox, name=f"sgtest-{run}-{service}-files", volume_names=volumes
    )
    reader = create_container(
        client, {**main, "healthcheck": None, "restart": "no"}, image=busybox,
        name=f"sgtest-{run}-{service}", volume_names=volumes,
        entrypoint=["/bin/sh", "-c", f'cat "${variable}"'], command=[],
    )  # fmt: skip
    try:
        assert _run_to_completion(client, reader, timeout=30) == 0, _logs(client, reader)
        return client.api.logs(reader.id, stderr=False).decode()
    finally:
        client.api.remove_container(reader.id, force=True)


def _fingerprints(data: bytes) -> set[str]:
    return {hashlib.sha256(b"".join(pem.split())).hexdigest() for pem in _PEM.findall(data)}


def _pem_fingerprints(client: docker.DockerClient, image: str) -> set[str]:
    found: set[str] = set()
    for _, content in image_files(client, image):
        if b"BEGIN CERTIFICATE" in content:
            found |= _fingerprints(content)
    return found


def _pem_fingerprints_not_from_a_wheel(client: docker.DockerClient, image: str) -> set[str]:
    """The image's certificates, but those of files a locked wheel installed unchanged: such a
    file matches its hash in the wheel's RECORD, and pip checked the wheel against the lock's
    hash (certifi's cacert.pem, Mozilla's roots, which the OTLP exporter's requests needs)."""
    recorded: dict[str, str] = {}
    bearing: dict[str, bytes] = {}
    for path, content in image_files(client, image):
        if path.endswith(".dist-info/RECORD"):
            root = path.rsplit("/", 2)[0]
            for line in content.decode().splitlines():
                name, digest, _ = line.rsplit(",", 2)
                if digest.startswith("sha256="):
                    recorded[f"{root}/{name}"] = digest.removeprefix("sha256=")
        if b"BEGIN CERTIFICATE" in content:
            bearing[path] = content
    found: set[str] = set()
    for path, content in bearing.items():
        actual = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        if recorded.get(path) != actual:
            found |= _fingerprints(content)
    return found


def test_the_image_holds_nothing_of_the_machine_that_built_it(
    docker_client: docker.DockerClient, app_image: str
) -> None:
    image = docker_client.api.inspect_image(app_image)
    env = image["Config"]["Env"]
    history = " ".join(h.get("CreatedBy", "") for h in docker_client.api.history(app_image))

    assert [
        e for e in env if e.split("=")[0].upper().startswith(("PIP_", "HTTP", "NO_PROXY"))
    ] == []
    assert "pip_cert" not in history and "PIP_" not in history, "the builder stage stays behind"
    assert "BEGIN CERTIFICATE" not in history
    # Where pip trusts a CA of the machine's own (here: the one its egress proxy signs with),
    # the build got it as the secret; none of it may be in the image. A machine whose pip
    # trusts no bundle of its own has no CA to leak.
    if (bundle := pip_ca_bundle()) is not None:
        machine_only = _fingerprints(bundle.read_bytes()) - _pem_fingerprints(
            docker_client, PYTHON_BASE_IMAGE
        )
        # A certificate of a locked wheel's file is the package's, whatever the machine trusts.
        assert machine_only.isdisjoint(_pem_fingerprints_not_from_a_wheel(docker_client, app_image))
    files = {path for path, _ in image_files(docker_client, app_image)}
    assert not {"etc/pip.conf", "etc/xdg/pip/pip.conf"} & files
    assert not [f for f in files if f.startswith("run/secrets")]


def test_the_runtime_venv_has_no_build_tools_and_the_fast_parsers(
    docker_client: docker.DockerClient, app_image: str
) -> None:
    probe = (
        "import importlib.util as u; "
        "print(' '.join(m for m in ('pip', 'setuptools', 'websockets', 'watchfiles', 'yaml', "
        "'uvloop', 'httptools') if u.find_spec(m)))"
    )
    output = docker_client.containers.run(
        app_image, entrypoint=["python", "-c", probe], network_mode="none", remove=True
    )

    assert output.decode().split() == ["uvloop", "httptools"]


def test_the_venv_holds_exactly_the_locked_versions(
    docker_client: docker.DockerClient, app_image: str
) -> None:
    probe = (
        "import importlib.metadata as m; "
        "print('\\n'.join(f'{d.name}=={d.version}' for d in m.distributions()))"
    )
    output = docker_client.containers.run(
        app_image, entrypoint=["python", "-c", probe], network_mode="none", remove=True
    )
    installed = dict(line.split("==") for line in output.decode().split())

    assert {canonicalize_name(n): v for n, v in installed.items()} == locked_versions()


def test_a_lock_entry_without_a_hash_fails_the_build(python_base: str, tmp_path: Path) -> None:
    # The build reads the lock in hash-checking mode: one pin without its hashes is refused
    # before anything is downloaded, so nothing unverified can reach the image.
    context = build_context_copy(tmp_path)
    lock = context / "app" / "requirements.lock"
    lock.write_text(lock.read_text() + "six==1.16.0\n")

    with pytest.raises(RuntimeError) as refused:
        build_app_image(python_base, context=context, tag="safeguard-test/app:unhashed")

    assert "Hashes are required in --require-hashes mode" in str(refused.value)
    assert "six==1.16.0" in str(refused.value)


# --- migrate, then the app, as the dev stack runs them -------------------------------------


@dataclass
class Served:
    app: Created
    migrate: Created
    adapted: Adapted
    database_url: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.adapted.port}"


def _run_to_completion(client: docker.DockerClient, made: Created, timeout: float = 120) -> int:
    client.api.start(made.id)
    return client.api.wait(made.id, timeout=timeout)["StatusCode"]


def _logs(client: docker.DockerClient, made: Created) -> str:
    return client.api.logs(made.id).decode(errors="replace")


@pytest.fixture(scope="module")
def dev_postgres(
    docker_client: docker.DockerClient, busybox: str, dev_stack: StackRun
) -> Iterator[PostgresServer]:
    """PostgreSQL initialised as the image's entrypoint does it (docker-library/postgres
    docker-entrypoint.sh: `initdb --username="$POSTGRES_USER" --pwfile=...` with the password
    file_env read from POSTGRES_PASSWORD_FILE), from what the postgres container reads."""
    env = dict(e.split("=", 1) for e in _rendered(dev_stack, "safeguard-dev-postgres")["envs"])
    password = read_secret_file(
        docker_client, dev_stack, busybox, "postgres", "POSTGRES_PASSWORD_FILE"
    )
    server = PostgresServer(
        root=new_temp_root("safeguard-dev-pg-"), user=env["POSTGRES_USER"], password=password
    )
    server.init()
    server.start()
    try:
        server.create_database(env["POSTGRES_DB"])
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="module")
def dev_redis(
    docker_client: docker.DockerClient, busybox: str, dev_stack: StackRun
) -> Iterator[RedisServer]:
    """redis-server requiring the password the redis container reads from its secret file."""
    password = read_secret_file(docker_client, dev_stack, busybox, "redis", "REDIS_PASSWORD_FILE")
    server = RedisServer(root=new_temp_root("safeguard-dev-redis-"), password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="module")
def served(
    docker_client: docker.DockerClient,
    app_image: str,
    busybox: str,
    dev_stack: StackRun,
    dev_postgres: PostgresServer,
    dev_redis: RedisServer,
) -> Iterator[Served]:
    run = uuid.uuid4().hex[:6]
    delivered: list[str] = []

    def database_url(rendered: str) -> str:
        delivered.append(on_loopback(rendered, dev_postgres.port))
        return delivered[-1]

    volumes = app_secrets(
        docker_client, dev_stack, busybox, database_url=database_url,
        redis_url=lambda rendered: on_loopback(rendered, dev_redis.port),
    )  # fmt: skip
    migrate_inputs = _rendered(dev_stack, "safeguard-dev-app-migrate")
    app_inputs = _rendered(dev_stack, "safeguard-dev-app")
    assert migrate_inputs["attach"] is True  # the provider runs it to completion first
    for_migrate = adapt(migrate_inputs)
    migrate = create_container(
        docker_client, migrate_inputs, image=app_image, name=f"sgtest-{run}-migrate",
        volume_names=volumes, envs=for_migrate.envs,
    )  # fmt: skip
    assert _run_to_completion(docker_client, migrate) == 0, _logs(docker_client, migrate)
    adapted = adapt(app_inputs)
    app = create_container(
        docker_client, app_inputs, image=app_image, name=f"sgtest-{run}-app",
        volume_names=volumes, envs=adapted.envs, healthcheck=adapted.healthcheck,
    )  # fmt: skip
    docker_client.api.start(app.id)
    try:
        yield Served(app=app, migrate=migrate, adapted=adapted, database_url=delivered[0])
    finally:
        docker_client.api.remove_container(app.id, force=True)
        docker_client.api.remove_container(migrate.id, force=True)


def test_the_app_and_the_servers_authenticate_with_the_delivered_files(
    docker_client: docker.DockerClient, served: Served, dev_postgres: PostgresServer,
    dev_redis: RedisServer,
) -> None:  # fmt: skip
    wait_healthy(docker_client, served.app.id, timeout=120)
    # The app's URLs came from its own secret files, with only host and port moved: their
    # credentials are the ones the database's and Redis's containers read from theirs.
    url = urlsplit(served.database_url)
    assert (url.username, url.password) == (dev_postgres.user, dev_postgres.password)
    ready = httpx.get(served.base_url + "/health/ready", timeout=5)
    assert ready.status_code == 200, ready.text
    created = httpx.post(served.base_url + "/api/v1/items", json={"name": "filed"}, timeout=5)
    assert created.status_code == 201, created.text
    with psycopg.connect(served.database_url) as connection:
        assert connection.execute("SELECT current_user").fetchone() == (dev_postgres.user,)
        names = connection.execute("SELECT name FROM items").fetchall()
    assert ("filed",) in names
    wrong = on_loopback(f"redis://:not-{dev_redis.password}@x:1/0", dev_redis.port)
    assert "WRONGPASS" in _redis_auth_reply(wrong)
    assert _redis_auth_reply(dev_redis.url()) == "+OK"
    # Nothing of them in the container's environment: only the files' paths.
    env = docker_client.api.inspect_container(served.app.id)["Config"]["Env"]
    assert not [e for e in env if dev_postgres.password in e or dev_redis.password in e]
    assert "DATABASE_URL_FILE=/run/secrets/app/DATABASE_URL" in env


def _redis_auth_reply(url: str) -> str:
    """Redis's answer to AUTH with the password of `url`, over a raw connection."""
    parts = urlsplit(url)
    with socket.create_connection(("127.0.0.1", parts.port or 6379), timeout=5) as connection:
        connection.sendall(f"AUTH {parts.password}\r\n".encode())
        return connection.recv(200).decode().split("\r\n")[0]


def test_migrate_runs_with_the_database_only(
    docker_client: docker.DockerClient, served: Served
) -> None:
    logs = _logs(docker_client, served.migrate)

    assert "REDIS_URL" not in " ".join(served.migrate.inputs["envs"])
    assert "database schema is at the latest migration" in logs
    assert "alembic.runtime.plugins" not in logs
    with psycopg.connect(served.database_url) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0001",)
        ]


def test_the_app_runs_as_declared_read_only_and_healthy(
    docker_client: docker.DockerClient, served: Served
) -> None:
    start_period = int(served.app.inputs["healthcheck"]["startPeriod"].removesuffix("s"))
    wait_healthy(docker_client, served.app.id, timeout=start_period)
    status = docker_client.api.exec_create(served.app.id, ["cat", "/proc/1/status"])
    lines = docker_client.api.exec_start(status["Id"]).decode().splitlines()
    uid = next(line.split()[1:] for line in lines if line.startswith("Uid:"))
    gid = next(line.split()[1:] for line in lines if line.startswith("Gid:"))

    user, group = served.app.inputs["user"].split(":")
    assert set(uid) == {user} and set(gid) == {group}
    for path in ("/health/live", "/health/ready", "/health/startup"):
        assert httpx.get(served.base_url + path, timeout=5).status_code == 200, path
    # Nothing written but the mount points the daemon makes for the secrets volume.
    mounted = [PurePosixPath(m["target"]) for m in served.app.inputs["mounts"]]
    points = {str(p) for t in mounted for p in [t, *t.parents] if str(p) != "/"}
    assert [c for c in diff(docker_client, served.app.id) if c[2:] not in points] == []
    assert points == {"/run", "/run/secrets", "/run/secrets/app"}


def test_docker_stop_under_load_drains_and_exits_zero(
    docker_client: docker.DockerClient, served: Served
) -> None:
    wait_healthy(docker_client, served.app.id, timeout=120)
    env = dict(e.split("=", 1) for e in served.adapted.envs)
    delay = float(env["SHUTDOWN_DELAY_SECONDS"])
    drain = float(env["SHUTDOWN_DRAIN_SECONDS"])
    base = served.base_url

    # The rendered RATE_LIMIT (100 a minute per client) holds: few API calls, many probes. A
    # budget, not a share of the requests, so a faster machine does not reach the limit.
    posts = itertools.count()

    def mixed(client: httpx.Client, name: str) -> httpx.Response:
        if int(name.split("-")[2]) % 25 == 0 and next(posts) < 60:
            return client.post(f"{base}/api/v1/items", json={"name": name})
        return client.get(f"{base}/health/live")

    readiness: list[tuple[float, int | None]] = []
    polling = threading.Event()

    def poll_readiness() -> None:
        while not polling.is_set():
            try:
                readiness.append((time.monotonic(), httpx.get(f"{base}/health/ready").status_code))
            except httpx.HTTPError:
                readiness.append((time.monotonic(), None))
            time.sleep(0.05)

    poller = threading.Thread(target=poll_readiness, daemon=True)
    load = Load(mixed, workers=3, max_seconds=delay + drain + 10, fresh_connections=True).start()
    poller.start()
    try:
        load.wait_until_answered(20)
        signalled = time.monotonic()
        # Without a timeout the daemon waits the container's own (the rendered stopTimeout).
        docker_client.api.stop(served.app.id)
        stopped = time.monotonic() - signalled
    finally:
        polling.set()
        outcomes = load.stop()
        poller.join(5)

    state = docker_client.api.inspect_container(served.app.id)["State"]
    answered = [o for o in outcomes if o.status is not None]
    assert state["ExitCode"] == 0 and not state["OOMKilled"]
    assert stopped < delay + drain, f"stopped after {stopped:.1f}s"
    assert len(answered) >= 20
    assert [(o.name, o.status) for o in answered if not 200 <= o.status < 300] == []
    # Unanswered: refused once the listener closed, reset in the kernel's accept queue as it
    # closed (ReadError), or accepted an instant before it closed and closed by uvicorn's
    # shutdown before the request was read (RemoteProtocolError: no response); never before the
    # readiness delay is over.
    failed = [(o.failure, round(o.started - signalled, 2)) for o in outcomes if o.failure]
    unanswered = ("ConnectError", "ReadError", "RemoteProtocolError")
    assert all(f in unanswered and t >= delay - 0.1 for f, t in failed), failed
    after = [(t, s) for t, s in readiness if t >= signalled]
    first_503 = next(t for t, s in after if s == 503)
    closed = next(t for t, s in after if s is None)
    assert first_503 < closed and closed - signalled >= delay - 0.2
    assert all(s != 200 for t, s in after if t > first_503), "readiness never comes back"
    assert "connections closed" in _logs(docker_client, served.app)


# --- SIGTERM before the server runs (PID 1: no default action) ------------------------------


def test_sigterm_while_postgres_is_unreachable_exits_at_once(
    docker_client: docker.DockerClient,
    app_image: str,
    busybox: str,
    dev_stack: StackRun,
    redis_server: RedisServer,
) -> None:
    inputs = _rendered(dev_stack, "safeguard-dev-app")
    nowhere = f"postgresql://safeguard:x@127.0.0.1:{free_port()}/app"
    volumes = app_secrets(
        docker_client, dev_stack, busybox, database_url=lambda _: nowhere,
        redis_url=lambda _: redis_server.url(9),
    )  # fmt: skip
    adapted = adapt(inputs)
    made = create_container(
        docker_client, inputs, image=app_image, name=f"sgtest-{uuid.uuid4().hex[:6]}-app-nodb",
        volume_names=volumes, envs=adapted.envs, healthcheck=adapted.healthcheck,
    )  # fmt: skip
    docker_client.api.start(made.id)
    wait_for(
        lambda: "PostgreSQL not reachable yet" in _logs(docker_client, made), 30,
        what="the app waiting for PostgreSQL",
    )  # fmt: skip

    signalled = time.monotonic()
    docker_client.api.stop(made.id)  # the rendered stopTimeout: 30 s until SIGKILL
    stopped = time.monotonic() - signalled

    state = docker_client.api.inspect_container(made.id)["State"]
    assert stopped < 5, f"stopped after {stopped:.1f}s"
    assert state["ExitCode"] == 143, _logs(docker_client, made)  # 128 + SIGTERM, not SIGKILL's 137
    assert "received SIGTERM while waiting for PostgreSQL" in _logs(docker_client, made)


def test_sigterm_while_migrating_exits_at_once(
    docker_client: docker.DockerClient,
    app_image: str,
    busybox: str,
    dev_stack: StackRun,
    database_url: str,
) -> None:
    inputs = _rendered(dev_stack, "safeguard-dev-app-migrate")
    volumes = app_secrets(
        docker_client, dev_stack, busybox, database_url=lambda _: database_url,
        redis_url=lambda _: "redis://unused",
    )  # fmt: skip
    adapted = adapt(inputs)
    made = create_container(
        docker_client, inputs, image=app_image, name=f"sgtest-{uuid.uuid4().hex[:6]}-migrate",
        volume_names=volumes, envs=adapted.envs,
    )  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        docker_client.api.start(made.id)
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        wait_for(lambda: holder.execute(waiting).fetchone() == (1,), 30, what="migrate waiting")

        signalled = time.monotonic()
        docker_client.api.stop(made.id, timeout=int(inputs["stopTimeout"]))
        stopped = time.monotonic() - signalled

        state = docker_client.api.inspect_container(made.id)["State"]
        assert stopped < 5, f"stopped after {stopped:.1f}s"
        assert state["ExitCode"] == 143, _logs(docker_client, made)
        assert holder.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)
