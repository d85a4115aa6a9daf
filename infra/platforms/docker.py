"""Docker back end (dev): a ServiceSpec becomes containers on private networks, with named volumes.

A Kubernetes pod maps onto a main container plus sidecars that join its network namespace
(`network_mode: container:<main>`), so `127.0.0.1` means the same thing on both platforms.
Init containers run to completion (`attach`) before the main container starts. Health checks
come from the same probe definitions as on Kubernetes; a container Docker cannot check carries
its spec's reason as a reviewed exemption from the `docker-healthcheck` policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_docker as docker
from pulumi_docker import ContainerHealthcheckArgsDict

from spec.labels import exemption, labels
from spec.platform import Deployed
from spec.probes import Exec, Probe, Probes
from spec.quantity import cpu_cores, memory_mb
from spec.service import Container, ScheduledJob, ServiceSpec
from spec.volumes import DataVolume, ExistingSecretVolume, FilesVolume, ScratchVolume, Volume


def cpus(quantity: str) -> str:
    """A Kubernetes CPU quantity ("500m", "2") as Docker's `cpus` ("0.5", "2")."""
    return f"{float(cpu_cores(quantity)):g}"


def healthcheck(container: Container) -> ContainerHealthcheckArgsDict | None:
    """The container's readiness probe as a Docker health check, run inside the container."""
    probes: Probes | None = container.probes
    if probes is None:
        return None
    command = _probe_command(probes.readiness, container)
    if command is None:
        return None
    check: ContainerHealthcheckArgsDict = {
        "tests": ["CMD", *command],
        "interval": f"{probes.readiness.period_seconds}s",
        "timeout": f"{probes.readiness.timeout_seconds}s",
        "retries": probes.readiness.failure_threshold,
    }
    if probes.startup is not None:
        # Failures during the startup budget do not count, as with a Kubernetes startup probe.
        budget = probes.startup.period_seconds * probes.startup.failure_threshold
        check["start_period"] = f"{budget}s"
        check["start_interval"] = f"{probes.startup.period_seconds}s"
    return check


def _probe_command(probe: Probe, container: Container) -> list[str] | None:
    if isinstance(probe.check, Exec):
        return list(probe.check.command)
    url = f"http://127.0.0.1:{probe.check.port}{probe.check.path}"
    if container.http_client == "wget":
        return ["wget", "-q", "-O", "/dev/null", "-T", str(probe.timeout_seconds), url]
    if container.http_client == "python":
        return [
            "python",
            "-c",
            "import urllib.request; "
            f"urllib.request.urlopen({url!r}, timeout={probe.timeout_seconds})",
        ]
    return None


class DockerPlatform:
    """Deploys containers onto a private `backend` network; public services also join `edge`."""

    name = "docker"

    def __init__(self, *, instance: str, backend: docker.Network, edge: docker.Network) -> None:
        self.instance = instance
        self.backend = backend
        self.edge = edge

    def deploy(
        self,
        spec: ServiceSpec,
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> Deployed:
        prefix = spec.prefix
        opts = pulumi.ResourceOptions(parent=parent)
        # Rendered files live on a volume too: Docker refuses to copy files into a read-only
        # root filesystem, but not into a volume mounted on it.
        volumes = {
            v.name: docker.Volume(
                f"{prefix}-{v.name}",
                name=f"{self.instance}-{spec.name}-{v.name}",
                labels=self._labels(spec.name),
                opts=opts,
            )
            for v in spec.volumes
            if isinstance(v, DataVolume | FilesVolume)
        }
        networks = [self.backend, self.edge] if spec.public or spec.publish else [self.backend]
        attach = [{"name": n.name, "aliases": [spec.name]} for n in networks]

        after = pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on))
        init_runs = [
            self._container(
                spec,
                c,
                volumes,
                after,
                networks_advanced=[{"name": n.name} for n in networks],
                attach=True,
                must_run=False,
                restart="no",
            )
            for c in spec.init_containers
        ]
        main_spec, *sidecars = spec.containers
        ports = [
            {"internal": p.port, "external": p.host_port, "ip": "127.0.0.1"} for p in spec.publish
        ]
        main = self._container(
            spec,
            main_spec,
            volumes,
            pulumi.ResourceOptions(parent=parent, depends_on=[*depends_on, *init_runs]),
            networks_advanced=attach,
            ports=ports,
            restart="unless-stopped",
        )
        for sidecar in sidecars:
            self._container(
                spec,
                sidecar,
                volumes,
                pulumi.ResourceOptions(parent=parent, depends_on=[main]),
                network_mode=main.id.apply(lambda container_id: f"container:{container_id}"),
                restart="unless-stopped",
            )
        return Deployed(host=spec.name)

    def schedule(self, job: ScheduledJob, parent: pulumi.Resource) -> None:
        raise ValueError(
            f"{job.name}: Docker has no scheduler; scheduled jobs need the kubernetes platform"
        )

    def _labels(
        self,
        service: str,
        c: Container | None = None,
        check: ContainerHealthcheckArgsDict | None = None,
    ) -> list[dict[str, str]]:
        found = _docker_labels(service, self.instance)
        if c is not None and check is None and c.no_docker_healthcheck:
            reason = exemption("docker-healthcheck", c.no_docker_healthcheck)
            found += [{"label": k, "value": v} for k, v in reason.items()]
        return found

    def _container(
        self,
        spec: ServiceSpec,
        c: Container,
        volumes: dict[str, docker.Volume],
        opts: pulumi.ResourceOptions,
        **extra: object,
    ) -> docker.Container:
        is_main = c is spec.containers[0]
        name = spec.name if is_main else f"{spec.name}-{c.name}"
        prefix = spec.prefix + ("" if is_main else f"-{c.name}")
        image: pulumi.Input[str] = c.image
        if isinstance(c.image, str):
            image = docker.RemoteImage(
                f"{prefix}-image", name=c.image, keep_locally=True, opts=opts
            ).image_id
        envs: list[pulumi.Input[str]] = [f"{k}={v}" for k, v in sorted(c.env.items())]
        envs += [
            pulumi.Output.secret(pulumi.Output.concat(env, "=", spec.secrets[key]))
            for env, key in sorted(c.secret_env.items())
        ]
        check = healthcheck(c)
        return docker.Container(
            f"{prefix}-container",
            name=f"{self.instance}-{name}",
            image=image,
            # Kubernetes semantics: `command` replaces the image's ENTRYPOINT, `args` its CMD.
            entrypoints=list(c.command) if c.command is not None else None,
            command=list(c.args) if c.args is not None else None,
            envs=envs,
            user=f"{c.uid}:{c.gid}",
            read_only=True,
            capabilities={"drops": ["ALL"]},
            security_opts=["no-new-privileges:true"],
            memory=memory_mb(c.compute.memory_limit),
            memory_reservation=memory_mb(c.compute.memory_request),
            cpus=cpus(c.compute.cpu_limit),
            tmpfs=self._tmpfs(c, spec.volumes),
            volumes=[
                {"volume_name": volumes[m.volume].name, "container_path": m.path}
                for m in c.mounts
                if m.volume in volumes
            ],
            uploads=self._uploads(c, spec.volumes),
            healthcheck=check,
            # Waiting for healthy makes `pulumi up` start dependents only once this one serves.
            wait=check is not None and "attach" not in extra,
            wait_timeout=180,
            labels=self._labels(spec.name, c, check),
            opts=opts,
            **extra,
        )

    def _tmpfs(self, c: Container, volumes: Sequence[Volume]) -> dict[str, str]:
        scratch = {v.name: v for v in volumes if isinstance(v, ScratchVolume)}
        return {
            m.path: (
                f"rw,noexec,nosuid,size={memory_mb(scratch[m.volume].size)}m,"
                f"uid={c.uid},gid={c.gid}"
            )
            for m in c.mounts
            if m.volume in scratch
        }

    def _uploads(
        self, c: Container, volumes: Sequence[Volume]
    ) -> list[dict[str, pulumi.Input[str]]]:
        by_name = {v.name: v for v in volumes}
        uploads: list[dict[str, pulumi.Input[str]]] = []
        for mount in c.mounts:
            volume = by_name[mount.volume]
            if isinstance(volume, ExistingSecretVolume):
                raise ValueError(
                    f"{volume.name}: secrets managed outside Pulumi exist only on Kubernetes"
                )
            if not isinstance(volume, FilesVolume):
                continue
            for file_name, content in sorted(volume.files.items()):
                body = pulumi.Output.secret(content) if volume.secret else content
                uploads.append(
                    {"file": f"{mount.path}/{file_name}", "content": body, "permissions": "0444"}
                )
        return uploads


def _docker_labels(service: str, instance: str) -> list[dict[str, str]]:
    return [{"label": k, "value": v} for k, v in sorted(labels(service, instance).items())]


def prepare_networks(instance: str, backend_subnet: str) -> tuple[docker.Network, docker.Network]:
    """The private `backend` network (no route out) on `backend_subnet`, and the `edge` network
    that publishes ports. The subnet is fixed so the app can name where its callers are."""
    backend = docker.Network(
        "network-backend",
        name=f"{instance}-backend",
        internal=True,
        ipam_configs=[{"subnet": backend_subnet}],
        labels=_docker_labels("backend", instance),
    )
    edge = docker.Network(
        "network-edge",
        name=f"{instance}-edge",
        labels=_docker_labels("edge", instance),
    )
    return backend, edge
