"""Kubernetes back end: a ServiceSpec becomes a Deployment or StatefulSet with its ServiceAccount,
ConfigMaps, Secret, Service, NetworkPolicy and, when asked for, PodDisruptionBudget, HPA and
Ingress; a ScheduledJob becomes a CronJob.

Hardening is applied here for every container alike, so no component can forget it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apps.v1 import DeploymentSpecArgsDict, StatefulSetSpecArgsDict
from pulumi_kubernetes.core.v1 import (
    ContainerArgsDict,
    PodSpecArgsDict,
    PodTemplateSpecArgsDict,
    ProbeArgsDict,
    SecurityContextArgsDict,
    ServiceSpecArgsDict,
    VolumeArgsDict,
)
from pulumi_kubernetes.meta.v1 import ObjectMetaArgsDict

from spec.labels import labels, selector
from spec.service import (
    Container,
    DataVolume,
    Deployed,
    ExistingSecretVolume,
    FilesVolume,
    HttpGet,
    Probe,
    ScheduledJob,
    ScratchVolume,
    ServiceSpec,
    Volume,
)

_SECCOMP = {"type": "RuntimeDefault"}
PROGRESS_DEADLINE_SECONDS = 600
"""A Deployment whose new pods are not ready by then is marked failed by Kubernetes itself."""
ROLLOUT_TIMEOUTS = pulumi.CustomTimeouts(create="15m", update="15m", delete="10m")
"""How long `pulumi up` waits for a workload to be ready. Longer than the progress deadline, so a
stuck Deployment fails with Kubernetes' own reason (ProgressDeadlineExceeded); StatefulSets have
no deadline of their own and this is their bound."""


class KubernetesPlatform:
    """Deploys into one namespace; `instance` (the stack) goes into every label set."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: pulumi.Input[str],
        instance: str,
        storage_class: str | None = None,
        public_service_type: str = "ClusterIP",
        ingress_class: str | None = None,
        host: str | None = None,
        tls_secret: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.instance = instance
        self.storage_class = storage_class
        self.public_service_type = public_service_type
        self.ingress_class = ingress_class
        self.host = host
        self.tls_secret = tls_secret

    def _meta(self, name: str, service: str) -> ObjectMetaArgsDict:
        return {"name": name, "namespace": self.namespace, "labels": labels(service, self.instance)}

    def deploy(
        self,
        spec: ServiceSpec,
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> Deployed:
        opts = pulumi.ResourceOptions(parent=parent)
        name = spec.name
        prefix = spec.prefix
        match_labels = selector(name, self.instance)

        account = k8s.core.v1.ServiceAccount(
            f"{prefix}-serviceaccount",
            metadata=self._meta(name, name),
            automount_service_account_token=spec.service_account_token,
            opts=opts,
        )
        if spec.secrets:
            k8s.core.v1.Secret(
                f"{prefix}-secret",
                metadata=self._meta(name, name),
                type="Opaque",
                string_data=pulumi.Output.secret(dict(spec.secrets)),
                opts=opts,
            )
        for container in (*spec.init_containers, *spec.containers):
            if container.env:
                k8s.core.v1.ConfigMap(
                    f"{prefix}-{container.name}-env",
                    metadata=self._meta(f"{name}-{container.name}-env", name),
                    data=dict(container.env),
                    opts=opts,
                )
        self._files(prefix, name, spec.volumes, opts)
        if spec.node_metrics:
            self._node_metrics_reader(prefix, name, account)
        # The provider's await logic (never skipped: no pulumi.com/skipAwait) fails `pulumi up`
        # when a rollout's new pods do not become ready within these timeouts.
        workload_opts = pulumi.ResourceOptions(
            parent=parent, depends_on=list(depends_on), custom_timeouts=ROLLOUT_TIMEOUTS
        )

        template = self._pod_template(spec, match_labels)
        if spec.stateful:
            k8s.apps.v1.StatefulSet(
                f"{prefix}-statefulset",
                metadata=self._meta(name, name),
                spec=self._statefulset_spec(spec, match_labels, template),
                opts=workload_opts,
            )
        else:
            if any(isinstance(v, DataVolume) for v in spec.volumes):
                raise ValueError(f"{name}: persistent volumes need stateful=True (a StatefulSet)")
            k8s.apps.v1.Deployment(
                f"{prefix}-deployment",
                metadata=self._meta(name, name),
                spec=self._deployment_spec(spec, match_labels, template),
                opts=workload_opts,
            )

        if spec.service_ports:
            service_type = self.public_service_type if spec.public else "ClusterIP"
            service_spec: ServiceSpecArgsDict = {
                "type": service_type,
                "selector": match_labels,
                "ports": [
                    {
                        "name": p.name,
                        "port": p.port,
                        "target_port": p.target or p.port,
                        "protocol": "TCP",
                    }
                    for p in spec.service_ports
                ],
            }
            if service_type in ("LoadBalancer", "NodePort"):
                # Nodes hand traffic only to pods of their own, without SNAT, so the pod sees
                # the address the connection came from rather than another node's.
                service_spec["external_traffic_policy"] = "Local"
            k8s.core.v1.Service(
                f"{prefix}-service",
                metadata=self._meta(name, name),
                spec=service_spec,
                opts=opts,
            )
        self._network_policy(spec, prefix, match_labels, opts)
        if spec.min_available is not None:
            k8s.policy.v1.PodDisruptionBudget(
                f"{prefix}-pdb",
                metadata=self._meta(name, name),
                spec={
                    "min_available": spec.min_available,
                    "selector": {"match_labels": match_labels},
                },
                opts=opts,
            )
        if spec.autoscaling is not None:
            scaling = spec.autoscaling
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{prefix}-hpa",
                metadata=self._meta(name, name),
                spec={
                    "scale_target_ref": {
                        "api_version": "apps/v1",
                        "kind": "StatefulSet" if spec.stateful else "Deployment",
                        "name": name,
                    },
                    "min_replicas": scaling.min_replicas,
                    "max_replicas": scaling.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "average_utilization": scaling.target_cpu_percent,
                                },
                            },
                        }
                    ],
                },
                opts=opts,
            )
        if spec.public and self.ingress_class:
            self._ingress(spec, prefix, opts)
        return Deployed(host=name)

    def schedule(self, job: ScheduledJob, parent: pulumi.Resource) -> None:
        opts = pulumi.ResourceOptions(parent=parent)
        for volume in job.volumes:
            if isinstance(volume, DataVolume):
                k8s.core.v1.PersistentVolumeClaim(
                    f"{job.name}-{volume.name}",
                    metadata=self._meta(f"{job.name}-{volume.name}", job.name),
                    spec=self._claim_spec(volume),
                    opts=opts,
                )
        self._files(job.name, job.name, job.volumes, opts)
        pod: PodSpecArgsDict = {
            **self._pod_security(job.container, token=False),
            "restart_policy": "OnFailure",
            "containers": [self._container(job.container, job.secrets_of or job.name, job.name)],
            "volumes": self._volumes(job.name, job.volumes, standalone_claims=True),
        }
        k8s.batch.v1.CronJob(
            f"{job.name}-cronjob",
            metadata=self._meta(job.name, job.name),
            spec={
                "schedule": job.schedule,
                "concurrency_policy": "Forbid",
                "successful_jobs_history_limit": 3,
                "failed_jobs_history_limit": 3,
                "job_template": {
                    "spec": {
                        "backoff_limit": 2,
                        "active_deadline_seconds": 3600,
                        "template": {
                            "metadata": {"labels": labels(job.name, self.instance)},
                            "spec": pod,
                        },
                    }
                },
            },
            opts=opts,
        )

    def _node_metrics_reader(
        self, prefix: str, name: str, account: k8s.core.v1.ServiceAccount
    ) -> None:
        opts = pulumi.ResourceOptions(parent=account)
        role_name = f"{self.instance}-{name}-node-metrics"
        role = k8s.rbac.v1.ClusterRole(
            f"{prefix}-clusterrole",
            metadata={"name": role_name, "labels": labels(name, self.instance)},
            rules=[
                {
                    "api_groups": [""],
                    "resources": ["nodes", "nodes/metrics", "nodes/proxy"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
            opts=opts,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{prefix}-clusterrolebinding",
            metadata={"name": role_name, "labels": labels(name, self.instance)},
            role_ref={
                "api_group": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role.metadata.name,
            },
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": self.namespace}],
            opts=opts,
        )

    # Builders -------------------------------------------------------------------------------

    def _files(
        self, prefix: str, service: str, volumes: Sequence[Volume], opts: pulumi.ResourceOptions
    ) -> None:
        for volume in volumes:
            if not isinstance(volume, FilesVolume):
                continue
            meta = self._meta(f"{prefix}-{volume.name}", service)
            if volume.secret:
                k8s.core.v1.Secret(
                    f"{prefix}-{volume.name}",
                    metadata=meta,
                    type="Opaque",
                    string_data=pulumi.Output.secret(dict(volume.files)),
                    opts=opts,
                )
            else:
                k8s.core.v1.ConfigMap(
                    f"{prefix}-{volume.name}", metadata=meta, data=dict(volume.files), opts=opts
                )

    def _pod_template(
        self, spec: ServiceSpec, match_labels: Mapping[str, str]
    ) -> PodTemplateSpecArgsDict:
        main = spec.containers[0]
        prefix = spec.prefix
        pod: PodSpecArgsDict = {
            **self._pod_security(main, token=spec.service_account_token),
            "service_account_name": spec.name,
            "termination_grace_period_seconds": 30,
            "containers": [self._container(c, spec.name, spec.name) for c in spec.containers],
            "volumes": self._volumes(prefix, spec.volumes),
        }
        if spec.init_containers:
            pod["init_containers"] = [
                self._container(c, spec.name, spec.name) for c in spec.init_containers
            ]
        if spec.replicas > 1 or spec.autoscaling is not None:
            # Spread replicas over nodes so one node going down never takes the service with it.
            pod["topology_spread_constraints"] = [
                {
                    "max_skew": 1,
                    "topology_key": "kubernetes.io/hostname",
                    "when_unsatisfiable": "ScheduleAnyway",
                    "label_selector": {"match_labels": dict(match_labels)},
                }
            ]
        return {"metadata": {"labels": labels(spec.name, self.instance)}, "spec": pod}

    def _pod_security(self, main: Container, *, token: bool) -> PodSpecArgsDict:
        return {
            "automount_service_account_token": token,
            # Service links would inject FOO_PORT=tcp://... variables that clash with real
            # settings (PORT, REDIS_PORT...) of the images.
            "enable_service_links": False,
            "security_context": {
                "run_as_non_root": True,
                "run_as_user": main.uid,
                "run_as_group": main.gid,
                "fs_group": main.gid,
                "seccomp_profile": _SECCOMP,
            },
        }

    def _deployment_spec(
        self,
        spec: ServiceSpec,
        match_labels: Mapping[str, str],
        template: PodTemplateSpecArgsDict,
    ) -> DeploymentSpecArgsDict:
        return {
            "replicas": spec.replicas,
            "revision_history_limit": 5,
            # A rollout that cannot get its new pods ready is reported as failed, not left hanging.
            "progress_deadline_seconds": PROGRESS_DEADLINE_SECONDS,
            "strategy": {
                "type": "RollingUpdate",
                "rolling_update": {"max_unavailable": 0, "max_surge": 1},
            },
            "selector": {"match_labels": dict(match_labels)},
            "template": template,
        }

    def _statefulset_spec(
        self,
        spec: ServiceSpec,
        match_labels: Mapping[str, str],
        template: PodTemplateSpecArgsDict,
    ) -> StatefulSetSpecArgsDict:
        return {
            "replicas": spec.replicas,
            "service_name": spec.name,
            "selector": {"match_labels": dict(match_labels)},
            "template": template,
            "volume_claim_templates": [
                {"metadata": {"name": v.name}, "spec": self._claim_spec(v)}
                for v in spec.volumes
                if isinstance(v, DataVolume)
            ],
        }

    def _claim_spec(self, volume: DataVolume) -> k8s.core.v1.PersistentVolumeClaimSpecArgsDict:
        claim: k8s.core.v1.PersistentVolumeClaimSpecArgsDict = {
            "access_modes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": volume.size}},
        }
        if self.storage_class:
            claim["storage_class_name"] = self.storage_class
        return claim

    def _volumes(
        self, prefix: str, volumes: Sequence[Volume], *, standalone_claims: bool = False
    ) -> list[VolumeArgsDict]:
        result: list[VolumeArgsDict] = []
        for volume in volumes:
            match volume:
                case ScratchVolume():
                    result.append({"name": volume.name, "empty_dir": {"size_limit": volume.size}})
                case FilesVolume(secret=True):
                    result.append(
                        {"name": volume.name, "secret": {"secret_name": f"{prefix}-{volume.name}"}}
                    )
                case FilesVolume():
                    result.append(
                        {"name": volume.name, "config_map": {"name": f"{prefix}-{volume.name}"}}
                    )
                case ExistingSecretVolume():
                    result.append(
                        {"name": volume.name, "secret": {"secret_name": volume.secret_name}}
                    )
                case DataVolume() if standalone_claims:
                    result.append(
                        {
                            "name": volume.name,
                            "persistent_volume_claim": {"claim_name": f"{prefix}-{volume.name}"},
                        }
                    )
                case DataVolume():
                    # A StatefulSet gets its data volumes from its claim templates.
                    pass
        return result

    def _container(self, c: Container, secret_owner: str, service: str) -> ContainerArgsDict:
        security: SecurityContextArgsDict = {
            "run_as_non_root": True,
            "run_as_user": c.uid,
            "run_as_group": c.gid,
            "read_only_root_filesystem": True,
            "allow_privilege_escalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccomp_profile": _SECCOMP,
        }
        container: ContainerArgsDict = {
            "name": c.name,
            "image": c.image,
            "image_pull_policy": "IfNotPresent",
            "security_context": security,
            "resources": {
                "requests": {"cpu": c.compute.cpu_request, "memory": c.compute.memory_request},
                "limits": {"cpu": c.compute.cpu_limit, "memory": c.compute.memory_limit},
            },
        }
        if c.command is not None:
            container["command"] = list(c.command)
        if c.args is not None:
            container["args"] = list(c.args)
        if c.ports:
            container["ports"] = [
                {"name": p.name, "container_port": p.port, "protocol": "TCP"} for p in c.ports
            ]
        if c.env:
            container["env_from"] = [{"config_map_ref": {"name": f"{service}-{c.name}-env"}}]
        if c.secret_env:
            container["env"] = [
                {"name": env, "value_from": {"secret_key_ref": {"name": secret_owner, "key": key}}}
                for env, key in sorted(c.secret_env.items())
            ]
        if c.mounts:
            container["volume_mounts"] = [
                {"name": m.volume, "mount_path": m.path, "read_only": m.read_only} for m in c.mounts
            ]
        if c.probes is not None:
            container["liveness_probe"] = _probe(c.probes.liveness)
            container["readiness_probe"] = _probe(c.probes.readiness)
            if c.probes.startup is not None:
                container["startup_probe"] = _probe(c.probes.startup)
        return container

    def _network_policy(
        self,
        spec: ServiceSpec,
        prefix: str,
        match_labels: Mapping[str, str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        rules = []
        for rule in spec.ingress:
            entry: dict = {"ports": [{"port": p, "protocol": "TCP"} for p in rule.ports]}
            if not rule.from_anywhere:
                entry["from_"] = [
                    {
                        "pod_selector": {
                            "match_labels": {
                                "app.kubernetes.io/name": source,
                                "app.kubernetes.io/instance": self.instance,
                            }
                        }
                    }
                    for source in rule.from_services
                ]
            rules.append(entry)
        k8s.networking.v1.NetworkPolicy(
            f"{prefix}-networkpolicy",
            metadata=self._meta(spec.name, spec.name),
            spec={
                "pod_selector": {"match_labels": dict(match_labels)},
                "policy_types": ["Ingress"],
                "ingress": rules,
            },
            opts=opts,
        )

    def _ingress(self, spec: ServiceSpec, prefix: str, opts: pulumi.ResourceOptions) -> None:
        port = spec.service_ports[0]
        rule = {
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "path_type": "Prefix",
                        "backend": {"service": {"name": spec.name, "port": {"number": port.port}}},
                    }
                ]
            }
        }
        if self.host:
            rule["host"] = self.host
        ingress_spec: dict = {"ingress_class_name": self.ingress_class, "rules": [rule]}
        if self.tls_secret:
            ingress_spec["tls"] = [
                {"hosts": [self.host] if self.host else [], "secret_name": self.tls_secret}
            ]
        k8s.networking.v1.Ingress(
            f"{prefix}-ingress",
            metadata=self._meta(spec.name, spec.name),
            spec=ingress_spec,
            opts=opts,
        )


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


def prepare_namespace(name: str, instance: str) -> k8s.core.v1.Namespace:
    """The stack's namespace, with Pod Security "restricted" enforced and ingress denied by
    default, so a workload is reachable only through the NetworkPolicy of its own service."""
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata={
            "name": name,
            "labels": {
                **labels("namespace", instance),
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    )
    k8s.networking.v1.NetworkPolicy(
        "namespace-default-deny",
        metadata={
            "name": "default-deny-ingress",
            "namespace": namespace.metadata.name,
            "labels": labels("default-deny-ingress", instance),
        },
        spec={"pod_selector": {}, "policy_types": ["Ingress"]},
    )
    return namespace
