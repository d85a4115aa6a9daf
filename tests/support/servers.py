"""Real PostgreSQL and Redis servers for the test suite, on 127.0.0.1 with ports picked at run time;
also nginx, Prometheus and Alertmanager, run in the foreground on the configuration under test.

The servers come from Debian's packages (installed by .ci/run). PostgreSQL refuses to run as root,
so when the suite runs as root its cluster belongs to the `postgres` user and is driven through
`runuser`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from components.nginx import NginxConf, TlsFiles
from tests.support.programs import (
    ALERTMANAGER,
    INITDB,
    NGINX,
    OPENSSL,
    PG_CTL,
    PROMETHEUS,
    REDIS_SERVER,
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and pg_ctl refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster listening on 127.0.0.1:<port>."""

    root: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    user: str = "postgres"
    """The superuser initdb makes (the official image: POSTGRES_USER), with `password`."""

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str = "postgres") -> str:
        """A `postgresql://` URL for the given database, as the app's DATABASE_URL takes it."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(
            _as_postgres_user(
                [
                    INITDB.path(),
                    "-D", str(self.data_dir),
                    "-U", self.user,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres_user(
                [
                    PG_CTL.path(), "start", "-w", "-t", "30",
                    "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-o", options,
                ]
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            _as_postgres_user(
                [PG_CTL.path(), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)]
            ),
            check=False,
            capture_output=True,
        )

    def _processes(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, ...)."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The command name (second field) may hold spaces; the parent follows its ')'.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        found, frontier = [postmaster], [postmaster]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent]
            found += children
            frontier += children
        return found

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and the kernel still accepts new
        ones, but nothing answers, as with a database host that hangs or drops off the network."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def is_running(self) -> bool:
        try:
            with psycopg.connect(self.admin_dsn, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RedisServer:
    """A throwaway redis-server listening on 127.0.0.1:<port>, password-protected."""

    root: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = REDIS_SERVER.path()
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--requirepass", self.password,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.root),
                "--logfile", str(self.root / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def new_temp_root(prefix: str) -> Path:
    # Not pytest's tmp_path: its parents are root-only, and the postgres user must reach the dir.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def eventually(check: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
    """The first truthy result of `check`, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def wait_for_http(url: str, timeout: float = 15.0, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `process` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1, verify=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


@dataclass
class ServerProcess:
    """A server run in the foreground as a child process; stdout and stderr go to files in
    `root`, so the output can be read while it runs (a pipe nobody reads would block it)."""

    root: Path
    name: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def stdout_path(self) -> Path:
        return self.root / f"{self.name}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.root / f"{self.name}.stderr"

    def spawn(
        self, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        return self.process

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def json_lines(self) -> list[dict]:
        lines = []
        for line in self.stdout().splitlines():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                lines.append(value)
        return lines

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode

    def fail(self, message: str) -> RuntimeError:
        return RuntimeError(f"{message}\n--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}")


def nginx_check(config: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on `config`, with its directory as the prefix (relative paths resolve there)."""
    return subprocess.run(
        [NGINX.path(), "-e", "stderr", "-p", f"{config.parent}/", "-c", str(config), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
    )


@dataclass
class NginxServer:
    """nginx in the foreground with a given nginx.conf (`-g 'daemon off;'`), as the container runs
    it. As root the master drops its workers to `nobody`, so `root` must be traversable."""

    root: Path
    config: str
    port: int
    server: ServerProcess = field(init=False)

    def __post_init__(self) -> None:
        self.server = ServerProcess(root=self.root, name="nginx")

    @property
    def config_path(self) -> Path:
        return self.root / "nginx.conf"

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.config_path.write_text(self.config)
        return self.config_path

    def start(self, timeout: float = 10) -> NginxServer:
        self.write()
        process = self.server.spawn(
            [NGINX.path(), "-e", "stderr", "-p", f"{self.root}/", "-c", str(self.config_path),
             "-g", "daemon off;"]
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self.server.fail(f"nginx exited with {process.returncode}")
            try:
                wait_for_port(self.port, timeout=0.2)
                return self
            except TimeoutError:
                continue
        self.stop()
        raise self.server.fail(f"nginx did not listen on {self.port} in {timeout}s")

    def stop(self) -> int | None:
        # SIGTERM is nginx's fast shutdown; SIGQUIT would wait for keep-alive clients.
        return self.server.stop()

    def access_log(self) -> list[dict]:
        return self.server.json_lines()

    def access_line(self, request_id: str, timeout: float = 5) -> dict:
        """The access log line of the request with this id (written once it is answered)."""
        return _line_with_id(self.access_log, request_id, timeout, "nginx access log")


@dataclass
class PrometheusServer:
    """A real Prometheus on 127.0.0.1:<port> with the given prometheus.yml."""

    root: Path
    config: str
    port: int = field(default_factory=free_port)
    flags: tuple[str, ...] = ()
    """More command-line flags."""
    server: ServerProcess = field(init=False)

    def __post_init__(self) -> None:
        self.server = ServerProcess(root=self.root, name="prometheus")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> PrometheusServer:
        binary = PROMETHEUS.path()
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "prometheus.yml"
        config.write_text(self.config)
        process = self.server.spawn(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
                *self.flags,
            ]
        )
        try:
            wait_for_http(f"{self.url}/-/ready", timeout=timeout, process=process)
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            raise self.server.fail(str(exc)) from exc
        return self

    def query(self, expr: str) -> list[dict]:
        """The result vector of an instant query."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def api(self, path: str) -> dict:
        response = httpx.get(f"{self.url}/api/v1/{path}", timeout=5)
        response.raise_for_status()
        return response.json()["data"]

    def stop(self) -> int | None:
        return self.server.stop()


@dataclass
class AlertmanagerServer:
    """A real Alertmanager on 127.0.0.1:<port> with the given alertmanager.yml, no clustering."""

    root: Path
    config: str
    port: int = field(default_factory=free_port)
    server: ServerProcess = field(init=False)

    def __post_init__(self) -> None:
        self.server = ServerProcess(root=self.root, name="alertmanager")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> AlertmanagerServer:
        binary = ALERTMANAGER.path()
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "alertmanager.yml"
        config.write_text(self.config)
        process = self.server.spawn(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]
        )
        try:
            wait_for_http(f"{self.url}/-/ready", timeout=timeout, process=process)
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            raise self.server.fail(str(exc)) from exc
        return self

    def alerts(self) -> list[dict]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        return response.json()

    def stop(self) -> int | None:
        return self.server.stop()


REPO_ROOT = Path(__file__).resolve().parents[2]
LIVE_APP_REDIS_DB = 8
"""The shared live app's Redis database; the in-process app tests flush another one."""
LIVE_APP_ORIGINS = ("https://app.example.com",)
"""CORS allowlist of the shared live app and of the nginx put in front of it."""


@dataclass
class LiveApp:
    """`python -m <module>` on 127.0.0.1:<env PORT>, started once `ready_path` answers 200.

    Its output goes to files under `root` (a ServerProcess), not pipes: under load the app fills
    a pipe nobody reads within a second and then blocks.
    """

    root: Path
    env: dict[str, str]
    module: str = "app"
    name: str = "app"
    ready_path: str = "/health/ready"
    server: ServerProcess = field(init=False)

    def __post_init__(self) -> None:
        self.server = ServerProcess(root=self.root, name=self.name)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.server.process

    @property
    def port(self) -> int:
        return int(self.env["PORT"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> LiveApp:
        process = self.server.spawn(
            [sys.executable, "-m", self.module], env=self.env, cwd=REPO_ROOT
        )
        try:
            wait_for_http(f"{self.base_url}{self.ready_path}", timeout=timeout, process=process)
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            raise self.server.fail(str(exc)) from exc
        return self

    def logs(self) -> str:
        return self.server.stdout() + self.server.stderr()

    def log_lines(self) -> list[dict]:
        return self.server.json_lines()

    def access_lines(self) -> list[dict]:
        return [line for line in self.log_lines() if line.get("logger") == "app.access"]

    def access_line(self, request_id: str, timeout: float = 5) -> dict:
        """The app's access log line for the request with this id (written as it goes)."""
        return _line_with_id(self.access_lines, request_id, timeout, "app.access log")

    def stop(self) -> int | None:
        return self.server.stop(timeout=30)


def _line_with_id(
    lines: Callable[[], list[dict]], request_id: str, timeout: float, log: str
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in lines():
            if line.get("request_id") == request_id:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no {log} line with request_id {request_id!r}")


def self_signed_certificate(root: Path, host: str, key_type: str = "rsa") -> TlsFiles:
    """A one-day self-signed certificate for `host` under `root`, made with the openssl CLI;
    `key_type` is "rsa" (2048 bits) or "ecdsa" (P-256)."""
    new_key = {"rsa": ["rsa:2048"], "ecdsa": ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]}
    cert, key = root / f"{host}-{key_type}.crt", root / f"{host}-{key_type}.key"
    subprocess.run(
        [OPENSSL.path(), "req", "-x509", "-newkey", *new_key[key_type], "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=DNS:{host}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    # As root nginx reads the key in the master; the workers (nobody) never need it.
    return TlsFiles(certificate=str(cert), key=str(key))


def nginx_test_conf(root: Path, port: int, **fields: object) -> NginxConf:
    """NginxConf(**fields) with what differs on a test machine: the public servers bound to
    127.0.0.1:`port` (TLS on the next free port) and serving the host 127.0.0.1, stub_status on
    a free port, pid and temp files under `root`. Everything else is the component's default or
    the caller's."""
    defaults: dict[str, object] = {
        "server_name": "127.0.0.1",
        "bind": "127.0.0.1",
        "listen_port": port,
        "tls_port": free_port(),
        "status_listen": f"127.0.0.1:{free_port()}",
        "temp_dir": str(root),
        "pid_path": str(root / "nginx.pid"),
    }
    return NginxConf(**(defaults | fields))  # type: ignore[arg-type]
