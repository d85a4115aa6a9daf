"""Real PostgreSQL and Redis servers for the test suite, on 127.0.0.1 with ports picked at run time.

The servers come from Debian's packages (installed by .ci/run). PostgreSQL refuses to run as root,
so when the suite runs as root its cluster belongs to the `postgres` user and is driven through
`runuser`.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg


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


def _postgres_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (.ci/run does)")
    return found


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and pg_ctl refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster listening on 127.0.0.1:<port>."""

    root: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str = "postgres") -> str:
        """A `postgresql://` URL for the given database, as the app's DATABASE_URL takes it."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

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
                    _postgres_bin("initdb"),
                    "-D", str(self.data_dir),
                    "-U", "postgres",
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
                    _postgres_bin("pg_ctl"), "start", "-w", "-t", "30",
                    "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-o", options,
                ]
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            _as_postgres_user(
                [_postgres_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)]
            ),
            check=False,
            capture_output=True,
        )

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
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RuntimeError(
                "redis-server not found: install Debian's redis-server (.ci/run does)"
            )
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
