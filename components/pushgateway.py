"""Pushgateway: where the scheduled jobs (the database's backup and restore check) leave their
outcome for Prometheus to scrape, since a job is gone before any scrape could reach it. Pushed
series survive a restart in a persistence file on the gateway's volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.common import NOBODY, small_compute, storage
from spec.images import is_pinned_image
from spec.platform import Platform
from spec.probes import HttpGet, Probe, Probes
from spec.service import Container, Ingress, Port, ServiceSpec
from spec.volumes import Mount

PORT = 9091


@dataclass(frozen=True, kw_only=True)
class PushgatewayArgs:
    """Settings of the Pushgateway."""

    platform: Platform
    """Back end that turns the description into resources."""
    pushers: tuple[str, ...]
    """Services (jobs) allowed to push."""
    scrapers: tuple[str, ...] = ("prometheus",)
    """Services allowed to read what was pushed."""
    storage_size: str | None = "1Gi"
    """Volume of the persistence file; None: pushed series live as long as the container."""
    image: str
    """Pushgateway image (the stack's `images.pushgateway`)."""

    def __post_init__(self) -> None:
        if not is_pinned_image(self.image):
            raise ValueError(f"PushgatewayArgs: image {self.image!r} must be pinned")
        if not self.pushers:
            raise ValueError("PushgatewayArgs: pushers is empty; without them nothing pushes")


class Pushgateway(pulumi.ComponentResource):
    """The Pushgateway."""

    url: pulumi.Output[str]
    """Where the jobs push: http://host:port inside the platform."""
    metrics_target: pulumi.Output[str]
    """host:port for Prometheus, which must keep the pushed `job` labels (honor_labels)."""

    def __init__(
        self, name: str, args: PushgatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("safeguard:components:Pushgateway", name, None, opts)
        deployed = args.platform.deploy(_service(name, args), parent=self)
        self.url = pulumi.Output.from_input(f"http://{deployed.host}:{PORT}")
        self.metrics_target = pulumi.Output.from_input(f"{deployed.host}:{PORT}")
        self.register_outputs({"url": self.url, "metrics_target": self.metrics_target})


def _service(name: str, args: PushgatewayArgs) -> ServiceSpec:
    server = Container(
        name="pushgateway",
        image=args.image,
        uid=NOBODY,
        gid=NOBODY,
        compute=small_compute(cpu_limit="200m", memory_limit="128Mi"),
        args=(
            f"--web.listen-address=:{PORT}",
            "--persistence.file=/data/pushgateway.db",
            # Pushes come once a night: written within a minute, none is lost to a restart.
            "--persistence.interval=1m",
        ),
        ports=(Port(name="http", port=PORT),),
        probes=Probes(
            liveness=Probe(check=HttpGet(path="/-/healthy", port=PORT)),
            readiness=Probe(check=HttpGet(path="/-/ready", port=PORT), period_seconds=5),
        ),
        mounts=(Mount(volume="data", path="/data"),),
    )
    return ServiceSpec(
        name=name,
        containers=(server,),
        stateful=args.storage_size is not None,
        volumes=(storage("data", args.storage_size),),
        service_ports=(Port(name="http", port=PORT),),
        ingress=(Ingress(from_services=(*args.pushers, *args.scrapers), ports=(PORT,)),),
    )
