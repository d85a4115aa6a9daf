"""The pods the back end runs: every container hardened alike (non-root, read-only root, no
capabilities, no privilege escalation, RuntimeDefault seccomp), with its probes, env, mounts and
resources, and the pod's volumes and security context.

Pure builders of the SDK's typed dicts; they register no resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pulumi_kubernetes.core.v1 import (
    ContainerArgsDict,
    ContainerPortArgsDict,
    EnvVarArgsDict,
    PodSpecArgsDict,
    PodTemplateSpecArgsDict,
    ProbeArgsDict,
    ProjectedVolumeSourceArgsDict,
    ResourceRequirementsArgsDict,
    SeccompProfileArgsDict,
    SecurityContextArgsDict,
    TopologySpreadConstraintArgsDict,
    VolumeArgsDict,
    VolumeMountArgsDict,
)

from infra.platforms.kubernetes.target import Target
from spec.probes import HttpGet, Probe, Probes
from spec.service import Compute, Container, Port, ScheduledJob, ServiceSpec
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

SECCOMP: SeccompProfileArgsDict = {"type": "RuntimeDefault"}


def pod_template(target: Target, spec: ServiceSpec) -> PodTemplateSpecArgsDict:
    """The pods of a service's Deployment or StatefulSet."""
    pod: PodSpecArgsDict = {
        **pod_security(spec.containers[0]),
        **_pull_secrets(target),
        "service_account_name": spec.name,
        "termination_grace_period_seconds": max(c.stop_grace_seconds for c in spec.containers),
        "containers": [container(c, spec.name, spec.name) for c in spec.containers],
        "volumes": volumes(spec.prefix, spec.volumes),
    }
    if spec.init_containers:
        pod["init_containers"] = [container(c, spec.name, spec.name) for c in spec.init_containers]
    if spec.replicas > 1 or spec.autoscaling is not None:
        # Spread replicas over nodes so one node going down never takes the service with it.
        pod["topology_spread_constraints"] = [_spread(target.selector(spec.name))]
    return {"metadata": {"labels": target.labels(spec.name)}, "spec": pod}


def job_pod(target: Target, job: ScheduledJob) -> PodSpecArgsDict:
    """The pod of a scheduled job: retried on failure, its claims mounted by name."""
    return {
        **pod_security(job.container),
        **_pull_secrets(target),
        "restart_policy": "OnFailure",
        "containers": [container(job.container, job.name, job.name)],
        "volumes": volumes(job.name, job.volumes, standalone_claims=True),
    }


def _pull_secrets(target: Target) -> PodSpecArgsDict:
    if not target.image_pull_secrets:
        return {}
    return {"image_pull_secrets": [{"name": name} for name in target.image_pull_secrets]}


def pod_security(main: Container) -> PodSpecArgsDict:
    """The pod-level settings: no service account token in every container (an ApiTokenVolume
    puts one where it is needed), non-root as the main container's user."""
    return {
        "automount_service_account_token": False,
        # Service links would inject FOO_PORT=tcp://... variables that clash with real
        # settings (PORT, REDIS_PORT...) of the images.
        "enable_service_links": False,
        "security_context": {
            "run_as_non_root": True,
            "run_as_user": main.uid,
            "run_as_group": main.gid,
            "fs_group": main.gid,
            "seccomp_profile": SECCOMP,
        },
    }


def container(c: Container, secret_owner: str, service: str) -> ContainerArgsDict:
    """One container: plain env from its ConfigMap, secret env from `secret_owner`'s Secret."""
    result: ContainerArgsDict = {
        "name": c.name,
        "image": c.image,
        "image_pull_policy": "IfNotPresent",
        "security_context": _security_context(c),
        "resources": _resources(c.compute),
    }
    if c.command is not None:
        result["command"] = list(c.command)
    if c.args is not None:
        result["args"] = list(c.args)
    if c.ports:
        result["ports"] = [_port(p) for p in c.ports]
    if c.env:
        result["env_from"] = [{"config_map_ref": {"name": f"{service}-{c.name}-env"}}]
    if c.secret_env:
        result["env"] = [
            _secret_env(env, key, secret_owner) for env, key in sorted(c.secret_env.items())
        ]
    if c.mounts:
        result["volume_mounts"] = [_mount(m) for m in c.mounts]
    if c.probes is not None:
        result.update(_probes(c.probes))
    return result


def volumes(
    prefix: str, declared: Sequence[Volume], *, standalone_claims: bool = False
) -> list[VolumeArgsDict]:
    """The pod's volumes; data volumes only as `standalone_claims` (a StatefulSet gets its own
    from its claim templates)."""
    found = (_volume(prefix, v, standalone_claims=standalone_claims) for v in declared)
    return [v for v in found if v is not None]


def _volume(prefix: str, volume: Volume, *, standalone_claims: bool) -> VolumeArgsDict | None:
    match volume:
        case ScratchVolume():
            return {"name": volume.name, "empty_dir": {"size_limit": volume.size}}
        case FilesVolume(secret=True):
            return {"name": volume.name, "secret": {"secret_name": f"{prefix}-{volume.name}"}}
        case FilesVolume():
            return {"name": volume.name, "config_map": {"name": f"{prefix}-{volume.name}"}}
        case ExistingSecretVolume():
            return {"name": volume.name, "secret": {"secret_name": volume.secret_name}}
        case ApiTokenVolume():
            return {"name": volume.name, "projected": _api_token(volume)}
        case DataVolume() if standalone_claims:
            claim = f"{prefix}-{volume.name}"
            return {"name": volume.name, "persistent_volume_claim": {"claim_name": claim}}
        case SharedVolume():
            # The claim `claims()` made for the owning job's data volume.
            claim = f"{volume.owner}-{volume.volume}"
            return {"name": volume.name, "persistent_volume_claim": {"claim_name": claim}}
    return None


def _api_token(volume: ApiTokenVolume) -> ProjectedVolumeSourceArgsDict:
    """What the automounted token volume holds, for one container only: a bound token of the
    pod's ServiceAccount (its audience the API server's own, the default when none is named)
    and the CA that every namespace's kube-root-ca.crt ConfigMap carries. No namespace file:
    nothing here reads it."""
    return {
        "sources": [
            {
                "service_account_token": {
                    "path": "token",
                    "expiration_seconds": volume.expiration_seconds,
                }
            },
            {
                "config_map": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
        ],
    }


def _security_context(c: Container) -> SecurityContextArgsDict:
    return {
        "run_as_non_root": True,
        "run_as_user": c.uid,
        "run_as_group": c.gid,
        "read_only_root_filesystem": True,
        "allow_privilege_escalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": SECCOMP,
    }


def _resources(compute: Compute) -> ResourceRequirementsArgsDict:
    return {
        "requests": {"cpu": compute.cpu_request, "memory": compute.memory_request},
        "limits": {"cpu": compute.cpu_limit, "memory": compute.memory_limit},
    }


def _port(port: Port) -> ContainerPortArgsDict:
    return {"name": port.name, "container_port": port.port, "protocol": "TCP"}


def _secret_env(env: str, key: str, secret_owner: str) -> EnvVarArgsDict:
    return {"name": env, "value_from": {"secret_key_ref": {"name": secret_owner, "key": key}}}


def _mount(mount: Mount) -> VolumeMountArgsDict:
    return {"name": mount.volume, "mount_path": mount.path, "read_only": mount.read_only}


def _probes(probes: Probes) -> ContainerArgsDict:
    result: ContainerArgsDict = {
        "liveness_probe": _probe(probes.liveness),
        "readiness_probe": _probe(probes.readiness),
    }
    if probes.startup is not None:
        result["startup_probe"] = _probe(probes.startup)
    return result


def _probe(probe: Probe) -> ProbeArgsDict:
    result: ProbeArgsDict = {
        "period_seconds": probe.period_seconds,
        "timeout_seconds": probe.timeout_seconds,
        "failure_threshold": probe.failure_threshold,
    }
    if isinstance(probe.check, HttpGet):
        result["http_get"] = {"path": probe.check.path, "port": probe.check.port}
    else:
        result["exec_"] = {"command": list(probe.check.command)}
    return result


def _spread(match_labels: Mapping[str, str]) -> TopologySpreadConstraintArgsDict:
    return {
        "max_skew": 1,
        "topology_key": "kubernetes.io/hostname",
        "when_unsatisfiable": "ScheduleAnyway",
        "label_selector": {"match_labels": dict(match_labels)},
    }
