"""Docker back end (dev): a ServiceSpec becomes containers on private networks, with named volumes.

A Kubernetes pod maps onto a main container plus sidecars that join its network namespace
(`network_mode: container:<main>`), so `127.0.0.1` means the same thing on both platforms.
Init containers run to completion (`attach`) before the main container starts. Health checks
come from the same probe definitions as on Kubernetes; a container Docker cannot check carries
its spec's reason as a reviewed exemption from the `docker-healthcheck` policy.

Rendered files reach a read-only container through a *carrier*. The provider delivers `uploads`
by extracting a tar at `/` before the container starts, and the daemon refuses any extraction
into a read-only root filesystem, even when every file lands in a volume
(kreuzwerker/terraform-provider-docker internal/provider/resource_docker_container_funcs.go,
v3.0.2 to v4.5.0; moby daemon/archive.go, v20.10.24). So each service with files gets one more
container, created and never started, not read-only and without a network, whose uploads land
in named volumes; the service mounts those volumes read-only. A volume's name ends in a digest
of its files, so a change makes a new volume, and with it a new carrier and a new service
container: nothing stale survives, and no container sees files change under it.

Secrets travel the same way, never in the environment: the engine sends a container's whole
`envs` list as one secret as soon as one entry is (the provider takes no secrets, so
pulumi/pulumi@v3.259.0 pkg/resource/plugin/provider_plugin.go#annotateSecrets wraps any list
holding one), and then neither the policy pack nor a diff sees the plain part. So each
container's `secret_files` become files of a secrets volume of its own, mounted read-only at
SECRETS_DIR/<container> in that container alone, and its plain environment names them
(`X_FILE=...`). Like every upload they are root-owned, so they are world-readable (0444) for
the container's non-root user; no other container mounts them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import pulumi
import pulumi_docker as docker
from pulumi_docker import ContainerHealthcheckArgsDict

from spec.labels import exemption, labels
from spec.platform import Deployed
from spec.probes import Exec, Probe, Probes
from spec.quantity import cpu_cores, memory_mb
from spec.service import Container, ScheduledJob, ServiceSpec
from spec.volumes import (
    ApiTokenVolume,
    DataVolume,
    ExistingSecretVolume,
    FilesVolume,
    Mount,
    ScratchVolume,
    SharedVolume,
    Volume,
)

SECRETS_DIR = "/run/secrets"
"""Container `c` finds its secret files in SECRETS_DIR/c, one per Secret key, named after it."""


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
        spec = with_secret_files(spec)
        prefix = spec.prefix
        for v in spec.volumes:
            if isinstance(v, ExistingSecretVolume):
                raise ValueError(
                    f"{v.name}: secrets managed outside Pulumi exist only on Kubernetes"
                )
            if isinstance(v, ApiTokenVolume):
                raise ValueError(f"{v.name}: a Kubernetes API token exists only on Kubernetes")
            if isinstance(v, SharedVolume):
                raise ValueError(
                    f"{v.name}: a job's volume exists only on Kubernetes (no jobs here)"
                )
        opts = pulumi.ResourceOptions(parent=parent)
        images = {c.name: self._image(spec, c, opts) for c in _all_containers(spec)}
        files = {v.name: v for v in spec.volumes if isinstance(v, FilesVolume)}
        volumes = {
            v.name: docker.Volume(
                f"{prefix}-{v.name}",
                name=self._volume_name(spec, v),
                labels=self._labels(spec.name),
                opts=opts,
            )
            for v in spec.volumes
            if isinstance(v, DataVolume | FilesVolume)
        }
        carrier = self._carrier(spec, files, volumes, images, opts) if files else None
        before = [*depends_on, *([carrier] if carrier is not None else [])]
        networks = [self.backend, self.edge] if spec.public or spec.publish else [self.backend]
        attach = [{"name": n.name, "aliases": [spec.name]} for n in networks]

        after = pulumi.ResourceOptions(parent=parent, depends_on=before)
        init_runs = [
            self._container(
                spec,
                c,
                images[c.name],
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
            images[main_spec.name],
            volumes,
            pulumi.ResourceOptions(parent=parent, depends_on=[*before, *init_runs]),
            networks_advanced=attach,
            ports=ports,
            restart="unless-stopped",
        )
        for sidecar in sidecars:
            self._container(
                spec,
                sidecar,
                images[sidecar.name],
                volumes,
                pulumi.ResourceOptions(parent=parent, depends_on=[*before, main]),
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

    def _image(
        self, spec: ServiceSpec, c: Container, opts: pulumi.ResourceOptions
    ) -> pulumi.Input[str]:
        if not isinstance(c.image, str):
            return c.image
        prefix = spec.prefix + ("" if c is spec.containers[0] else f"-{c.name}")
        return docker.RemoteImage(
            f"{prefix}-image", name=c.image, keep_locally=True, opts=opts
        ).image_id

    def _volume_name(
        self, spec: ServiceSpec, volume: DataVolume | FilesVolume
    ) -> pulumi.Input[str]:
        name = f"{self.instance}-{spec.name}-{volume.name}"
        if isinstance(volume, DataVolume):
            return name
        # A digest of a secret file is kept secret too: it could confirm a guess of the content.
        return files_digest(volume).apply(lambda digest: f"{name}-{digest}")

    def _carrier(
        self,
        spec: ServiceSpec,
        files: dict[str, FilesVolume],
        volumes: dict[str, docker.Volume],
        images: dict[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions,
    ) -> docker.Container:
        """The container that receives the service's files into their volumes and never runs.

        It is the image of the first container that mounts them (already pulled, and its
        entrypoint never runs), mounts each volume where that container does, with no_copy:
        else the daemon copies the image's own files at that path into the empty volume when
        the carrier is created (moby daemon/create_unix.go populateVolumes, v20.10.24).
        """
        paths: dict[str, str] = {}
        owner: Container | None = None
        for c in _all_containers(spec):
            for m in c.mounts:
                if m.volume in files and m.volume not in paths:
                    paths[m.volume] = m.path
                    owner = owner or c
        if owner is None:
            raise ValueError(f"{spec.name}: files volumes {sorted(files)} are mounted nowhere")
        uploads = [upload for name, path in paths.items() for upload in _uploads(files[name], path)]
        return docker.Container(
            f"{spec.prefix}-files",
            name=f"{self.instance}-{spec.name}-files",
            image=images[owner.name],
            # Never started, so never restarted: a file carrier, not a workload. The policy
            # pack checks exactly these three before it skips the rules about running.
            start=False,
            must_run=False,
            restart="no",
            network_mode="none",
            user=f"{owner.uid}:{owner.gid}",
            capabilities={"drops": ["ALL"]},
            security_opts=["no-new-privileges:true"],
            mounts=[
                {
                    "type": "volume",
                    "source": volumes[name].name,
                    "target": path,
                    "volume_options": {"no_copy": True},
                }
                for name, path in paths.items()
            ],
            uploads=uploads,
            labels=self._labels(spec.name),
            opts=opts,
        )

    def _container(
        self,
        spec: ServiceSpec,
        c: Container,
        image: pulumi.Input[str],
        volumes: dict[str, docker.Volume],
        opts: pulumi.ResourceOptions,
        **extra: object,
    ) -> docker.Container:
        is_main = c is spec.containers[0]
        name = spec.name if is_main else f"{spec.name}-{c.name}"
        prefix = spec.prefix + ("" if is_main else f"-{c.name}")
        # Plain only: with_secret_files turned the secrets into files this env names.
        envs: list[pulumi.Input[str]] = [
            pulumi.Output.concat(k, "=", v) for k, v in sorted(c.env.items())
        ]
        files = {v.name for v in spec.volumes if isinstance(v, FilesVolume)}
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
                {
                    "volume_name": volumes[m.volume].name,
                    "container_path": m.path,
                    **({"read_only": True} if m.read_only else {}),
                }
                for m in c.mounts
                if m.volume in volumes and m.volume not in files
            ],
            mounts=[
                {
                    "type": "volume",
                    "source": volumes[m.volume].name,
                    "target": m.path,
                    "read_only": True,
                    "volume_options": {"no_copy": True},
                }
                for m in c.mounts
                if m.volume in files
            ],
            healthcheck=check,
            # Waiting for healthy makes `pulumi up` start dependents only once this one serves.
            wait=check is not None and "attach" not in extra,
            wait_timeout=180,
            # `docker stop` and daemon shutdowns wait stop_timeout; the provider's delete (a
            # replacement, `pulumi destroy`) waits destroy_grace_seconds, and 0 without it:
            # SIGKILL in the middle of a drain.
            stop_timeout=c.stop_grace_seconds,
            destroy_grace_seconds=c.stop_grace_seconds,
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


def with_secret_files(spec: ServiceSpec) -> ServiceSpec:
    """`spec` with each container's `secret_files` as a secret files volume of its own, mounted
    read-only at SECRETS_DIR/<container>, and the variables naming the files in its plain env; its
    `secret_env` is then delivered, and nothing secret is left for the environment."""
    names = {v.name for v in spec.volumes}
    volumes: list[Volume] = []

    def deliver(c: Container) -> Container:
        if c.secret_env and not c.secret_files:
            raise ValueError(
                f"{spec.name}: container {c.name!r} reads secret_env "
                f"{sorted(c.secret_env)} from its environment; Docker delivers secrets only "
                "as files: set secret_files to the variables naming the files it reads instead"
            )
        if not c.secret_files:
            return c
        missing = sorted(set(c.secret_files.values()) - set(spec.secrets))
        if missing:
            raise ValueError(
                f"{spec.name}: container {c.name!r} secret_files name keys {missing} that the "
                f"service's secrets do not have (it has {sorted(spec.secrets)})"
            )
        clash = sorted(set(c.secret_files) & set(c.env))
        if clash:
            raise ValueError(f"{spec.name}: container {c.name!r} sets {clash} in env too")
        name = f"{c.name}-secrets"
        if name in names:
            raise ValueError(f"{spec.name}: a volume is already named {name!r}")
        volumes.append(
            FilesVolume(
                name=name,
                files={key: spec.secrets[key] for key in sorted(set(c.secret_files.values()))},
                secret=True,
            )
        )
        # A directory per container: the service's carrier mounts each volume where its
        # container does, and one path cannot hold two volumes.
        path = f"{SECRETS_DIR}/{c.name}"
        return dataclasses.replace(
            c,
            env={**c.env, **{v: f"{path}/{key}" for v, key in c.secret_files.items()}},
            mounts=(*c.mounts, Mount(volume=name, path=path, read_only=True)),
        )

    containers = tuple(deliver(c) for c in spec.containers)
    init_containers = tuple(deliver(c) for c in spec.init_containers)
    if not volumes:
        return spec
    return dataclasses.replace(
        spec,
        containers=containers,
        init_containers=init_containers,
        volumes=(*spec.volumes, *volumes),
    )


def _all_containers(spec: ServiceSpec) -> tuple[Container, ...]:
    return (*spec.containers, *spec.init_containers)


def files_digest(volume: FilesVolume) -> pulumi.Output[str]:
    """12 hex digits of sha256 over the volume's file names and contents, in name order."""
    names = sorted(volume.files)

    def digest(contents: list[str]) -> str:
        h = hashlib.sha256()
        for name, content in zip(names, contents, strict=True):
            for part in (name, content):
                h.update(part.encode())
                h.update(b"\0")
        return h.hexdigest()[:12]

    return pulumi.Output.all(*(volume.files[n] for n in names)).apply(digest)


def _uploads(volume: FilesVolume, path: str) -> list[dict[str, pulumi.Input[str]]]:
    # Uploads are always root:root, so only world-readable files reach a non-root service.
    return [
        {
            "file": f"{path}/{file_name}",
            "content": pulumi.Output.secret(content) if volume.secret else content,
            "permissions": "0444",
        }
        for file_name, content in sorted(volume.files.items())
    ]


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
