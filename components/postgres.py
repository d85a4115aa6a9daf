"""PostgreSQL: a StatefulSet (or container) with its data volume, a generated password, a
postgres_exporter sidecar, and its scheduled jobs (components/backups.py): a nightly `pg_dump
-Fc` kept on a volume of its own and encrypted off site, and a restore check of the newest dump.
Restore: docs/backup-restore.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.backups import BackupPolicy, backup_job, restore_check_job
from components.common import EXPORTER_COMPUTE, TMP, TMP_MOUNT, secret_password
from spec.images import is_pinned_image
from spec.platform import Platform
from spec.probes import Exec, HttpGet, Probe, Probes
from spec.service import Compute, Container, Ingress, Port, ServiceSpec
from spec.volumes import DataVolume, Mount, ScratchVolume

PORT = 5432
EXPORTER_PORT = 9187
UID = 70
"""The `postgres` user of the official Alpine image."""
DATA_DIR = "/var/lib/postgresql/data"


@dataclass(frozen=True, kw_only=True)
class PostgresArgs:
    """Settings of the database service."""

    platform: Platform
    """Back end that turns the description into resources."""
    compute: Compute
    """Requests and limits of the database container."""
    storage_size: str | None
    """Size of the data volume; None keeps data only for the life of the container."""
    backup: BackupPolicy | None = None
    """Scheduled dumps; None: no backups."""
    clients: tuple[str, ...] = ("app",)
    """Services allowed to connect on the PostgreSQL port."""
    scrapers: tuple[str, ...] = ("prometheus",)
    """Services allowed to read the exporter's metrics."""
    database: str = "safeguard"
    """Database created on first start."""
    user: str = "safeguard"
    """Owner of the database."""
    image: str
    """PostgreSQL image (the stack's `images.postgres`); the backup image (BackupPolicy.image) is
    built on the same version."""
    exporter_image: str
    """Sidecar exporting pg_up and friends."""

    def __post_init__(self) -> None:
        for image in (self.image, self.exporter_image):
            if not is_pinned_image(image):
                raise ValueError(f"PostgresArgs: image {image!r} must be pinned")
        if not self.database.isidentifier() or not self.user.isidentifier():
            raise ValueError("PostgresArgs: database and user must be plain identifiers")


class Postgres(pulumi.ComponentResource):
    """The database, its exporter and its backups."""

    host: pulumi.Output[str]
    """DNS name of the database inside the platform."""
    port: pulumi.Output[int]
    """PostgreSQL port."""
    database: pulumi.Output[str]
    """Database name."""
    user: pulumi.Output[str]
    """User owning the database."""
    password: pulumi.Output[str]
    """The user's password (secret)."""
    url: pulumi.Output[str]
    """postgresql:// URL with credentials (secret)."""
    metrics_target: pulumi.Output[str]
    """host:port of the exporter, for Prometheus."""

    def __init__(
        self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("safeguard:components:Postgres", name, None, opts)
        password = secret_password(f"{name}-password", self)
        deployed = args.platform.deploy(_service(name, args, password), parent=self)
        if args.backup is not None:
            self._schedule(name, args, args.backup, deployed.host, password)

        self.host = pulumi.Output.from_input(deployed.host)
        self.port = pulumi.Output.from_input(PORT)
        self.database = pulumi.Output.from_input(args.database)
        self.user = pulumi.Output.from_input(args.user)
        self.password = password
        self.url = pulumi.Output.secret(
            pulumi.Output.format(
                "postgresql://{0}:{1}@{2}:{3}/{4}",
                args.user,
                password,
                deployed.host,
                PORT,
                args.database,
            )
        )
        self.metrics_target = pulumi.Output.from_input(f"{deployed.host}:{EXPORTER_PORT}")
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "database": self.database,
                "user": self.user,
                "password": self.password,
                "url": self.url,
                "metrics_target": self.metrics_target,
            }
        )

    def _schedule(
        self,
        name: str,
        args: PostgresArgs,
        policy: BackupPolicy,
        host: str,
        password: pulumi.Output[str],
    ) -> None:
        platform = args.platform
        platform.schedule(
            backup_job(
                name,
                policy=policy,
                host=host,
                port=PORT,
                database=args.database,
                user=args.user,
                password=password,
            ),
            parent=self,
        )
        if policy.restore_check is not None:
            # The throwaway copy gets the room the database itself has.
            platform.schedule(
                restore_check_job(
                    name,
                    policy=policy,
                    check=policy.restore_check,
                    database=args.database,
                    scratch_size=args.storage_size or "1Gi",
                ),
                parent=self,
            )


def _ready(args: PostgresArgs) -> Exec:
    # TCP to 127.0.0.1, not the socket: ready means ready for the clients on the network.
    return Exec(command=("pg_isready", "-h", "127.0.0.1", "-U", args.user, "-d", args.database))


def _service(name: str, args: PostgresArgs, password: pulumi.Output[str]) -> ServiceSpec:
    data = (
        DataVolume(name="data", size=args.storage_size)
        if args.storage_size
        else ScratchVolume(name="data", size="1Gi")
    )
    server = Container(
        name="postgres",
        image=args.image,
        uid=UID,
        gid=UID,
        compute=args.compute,
        ports=(Port(name="postgres", port=PORT),),
        env={
            "POSTGRES_USER": args.user,
            "POSTGRES_DB": args.database,
            # A subdirectory, because a fresh volume's root holds lost+found and initdb wants
            # an empty directory.
            "PGDATA": f"{DATA_DIR}/pgdata",
        },
        secret_env={"POSTGRES_PASSWORD": "POSTGRES_PASSWORD"},
        # The image's entrypoint reads <VAR>_FILE for POSTGRES_PASSWORD (docker-library/postgres
        # docker-entrypoint.sh#file_env, as shipped with 16.4-alpine3.20).
        secret_files={"POSTGRES_PASSWORD_FILE": "POSTGRES_PASSWORD"},
        probes=Probes(
            liveness=Probe(check=_ready(args), period_seconds=10, timeout_seconds=5),
            readiness=Probe(check=_ready(args), period_seconds=5, timeout_seconds=3),
            startup=Probe(check=_ready(args), period_seconds=5, failure_threshold=60),
        ),
        mounts=(
            Mount(volume="data", path=DATA_DIR),
            Mount(volume="run", path="/var/run/postgresql"),
            TMP_MOUNT,
        ),
    )
    exporter = Container(
        name="exporter",
        image=args.exporter_image,
        uid=65534,
        gid=65534,
        compute=EXPORTER_COMPUTE,
        ports=(Port(name="metrics", port=EXPORTER_PORT),),
        env={
            "DATA_SOURCE_URI": f"127.0.0.1:{PORT}/{args.database}?sslmode=disable",
            "DATA_SOURCE_USER": args.user,
        },
        secret_env={"DATA_SOURCE_PASS": "POSTGRES_PASSWORD"},
        # prometheus-community/postgres_exporter@v0.15.0 cmd/postgres_exporter/datasource.go
        # #getDataSources: DATA_SOURCE_PASS_FILE, whitespace trimmed.
        secret_files={"DATA_SOURCE_PASS_FILE": "POSTGRES_PASSWORD"},
        probes=Probes.same(Probe(check=HttpGet(path="/", port=EXPORTER_PORT))),
    )
    return ServiceSpec(
        name=name,
        containers=(server, exporter),
        stateful=True,
        volumes=(data, ScratchVolume(name="run", size="16Mi"), TMP),
        secrets={"POSTGRES_PASSWORD": password},
        service_ports=(
            Port(name="postgres", port=PORT),
            Port(name="metrics", port=EXPORTER_PORT),
        ),
        ingress=(
            Ingress(from_services=(*args.clients, f"{name}-backup"), ports=(PORT,)),
            Ingress(from_services=args.scrapers, ports=(EXPORTER_PORT,)),
        ),
    )
