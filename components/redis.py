"""Redis: a StatefulSet (or container) with append-only persistence, a generated password and a
redis_exporter sidecar; only the app and Prometheus may connect.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.common import EXPORTER_COMPUTE, TMP, TMP_MOUNT, secret_password
from spec.images import is_pinned_image
from spec.platform import Platform
from spec.probes import Exec, HttpGet, Probe, Probes
from spec.quantity import memory_mb
from spec.service import Compute, Container, Ingress, Port, ServiceSpec
from spec.volumes import DataVolume, Mount, ScratchVolume

PORT = 6379
EXPORTER_PORT = 9121
UID = 999
GID = 1000
"""The `redis` user and group of the official Alpine image."""


@dataclass(frozen=True, kw_only=True)
class RedisArgs:
    """Settings of the cache and rate-limit store."""

    platform: Platform
    """Back end that turns the description into resources."""
    compute: Compute
    """Requests and limits of the Redis container."""
    storage_size: str | None
    """Size of the append-only-file volume; None keeps data only for the life of the container."""
    clients: tuple[str, ...] = ("app",)
    """Services allowed to connect on the Redis port."""
    scrapers: tuple[str, ...] = ("prometheus",)
    """Services allowed to read the exporter's metrics."""
    image: str
    """Redis image (the stack's `images.redis`)."""
    exporter_image: str
    """Sidecar exporting redis_up and friends (a scratch image: no shell, no wget)."""

    def __post_init__(self) -> None:
        for image in (self.image, self.exporter_image):
            if not is_pinned_image(image):
                raise ValueError(f"RedisArgs: image {image!r} must be pinned")
        memory_mb(self.compute.memory_limit)  # raises on a quantity maxmemory cannot use


class Redis(pulumi.ComponentResource):
    """Redis with persistence and its exporter."""

    host: pulumi.Output[str]
    """DNS name of Redis inside the platform."""
    port: pulumi.Output[int]
    """Redis port."""
    password: pulumi.Output[str]
    """The password (secret)."""
    url: pulumi.Output[str]
    """redis:// URL with the password (secret)."""
    metrics_target: pulumi.Output[str]
    """host:port of the exporter, for Prometheus."""

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("safeguard:components:Redis", name, None, opts)
        password = secret_password(f"{name}-password", self)
        deployed = args.platform.deploy(_service(name, args, password), parent=self)

        self.host = pulumi.Output.from_input(deployed.host)
        self.port = pulumi.Output.from_input(PORT)
        self.password = password
        self.url = pulumi.Output.secret(
            pulumi.Output.format("redis://:{0}@{1}:{2}/0", password, deployed.host, PORT)
        )
        self.metrics_target = pulumi.Output.from_input(f"{deployed.host}:{EXPORTER_PORT}")
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "password": self.password,
                "url": self.url,
                "metrics_target": self.metrics_target,
            }
        )


_READ_PASSWORD = (
    # The official images' file_env convention: REDIS_PASSWORD from the file REDIS_PASSWORD_FILE
    # names, where the platform delivers secrets as files (Docker), else from the environment.
    'if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then '
    'REDIS_PASSWORD="$(cat "$REDIS_PASSWORD_FILE")"; fi; '
)
EXPORTER_ADDR = f"redis://127.0.0.1:{PORT}"
"""The address the exporter scrapes, and the key of its password file."""


def _service(name: str, args: RedisArgs, password: pulumi.Output[str]) -> ServiceSpec:
    # redis-cli reads REDISCLI_AUTH, which keeps the password off the probe's command line.
    ping = Exec(
        command=(
            "sh",
            "-c",
            _READ_PASSWORD
            + 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 ping | grep -q PONG',
        )
    )
    data = (
        DataVolume(name="data", size=args.storage_size)
        if args.storage_size
        else ScratchVolume(name="data", size="256Mi")
    )
    # The password comes from the environment or a file through the shell, so it never appears
    # in the pod spec; volatile-lru evicts only keys with a TTL (cache entries, rate-limit
    # windows).
    server_script = _READ_PASSWORD + (
        "exec redis-server --port 6379 --dir /data --appendonly yes --appendfsync everysec "
        # Three quarters of the memory limit leaves room for AOF rewrites.
        f"--maxmemory {memory_mb(args.compute.memory_limit) * 3 // 4}mb "
        "--maxmemory-policy volatile-lru "
        '--requirepass "$REDIS_PASSWORD"'
    )
    server = Container(
        name="redis",
        image=args.image,
        uid=UID,
        gid=GID,
        compute=args.compute,
        command=("sh", "-c", server_script),
        ports=(Port(name="redis", port=PORT),),
        secret_env={"REDIS_PASSWORD": "REDIS_PASSWORD"},
        secret_files={"REDIS_PASSWORD_FILE": "REDIS_PASSWORD"},
        probes=Probes(
            liveness=Probe(check=ping, period_seconds=10, timeout_seconds=3),
            readiness=Probe(check=ping, period_seconds=5, timeout_seconds=3),
            startup=Probe(check=ping, period_seconds=2, failure_threshold=60),
        ),
        mounts=(Mount(volume="data", path="/data"), TMP_MOUNT),
    )
    exporter = Container(
        name="exporter",
        image=args.exporter_image,
        uid=59000,
        gid=59000,
        compute=EXPORTER_COMPUTE,
        ports=(Port(name="metrics", port=EXPORTER_PORT),),
        env={"REDIS_ADDR": EXPORTER_ADDR},
        secret_env={"REDIS_PASSWORD": "REDIS_PASSWORD"},
        # Its password file is a JSON object of address -> password, looked up by REDIS_ADDR
        # (oliver006/redis_exporter@v1.62.0 main.go REDIS_PASSWORD_FILE, exporter/pwd_file.go
        # #LoadPwdFile, exporter/redis.go#configureOptions).
        secret_files={"REDIS_PASSWORD_FILE": "REDIS_EXPORTER_PASSWORDS"},
        probes=Probes.same(Probe(check=HttpGet(path="/health", port=EXPORTER_PORT))),
        http_client=None,
        no_docker_healthcheck=(
            "redis_exporter is a scratch image with no shell or HTTP client to run a check "
            "inside the container; Prometheus scrapes it, and its TargetDown alert fires when "
            "the exporter stops answering"
        ),
    )
    return ServiceSpec(
        name=name,
        containers=(server, exporter),
        stateful=True,
        volumes=(data, TMP),
        secrets={
            "REDIS_PASSWORD": password,
            "REDIS_EXPORTER_PASSWORDS": pulumi.Output.secret(
                pulumi.Output.json_dumps({EXPORTER_ADDR: password})
            ),
        },
        service_ports=(Port(name="redis", port=PORT), Port(name="metrics", port=EXPORTER_PORT)),
        ingress=(
            Ingress(from_services=args.clients, ports=(PORT,)),
            Ingress(from_services=args.scrapers, ports=(EXPORTER_PORT,)),
        ),
    )
