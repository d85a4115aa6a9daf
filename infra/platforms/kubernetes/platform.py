"""The Kubernetes back end: a ServiceSpec becomes a Deployment or StatefulSet with its
ServiceAccount, ConfigMaps, Secret, Service, NetworkPolicy and, when asked for,
PodDisruptionBudget, HPA and Ingress; a ScheduledJob becomes a CronJob.

Each concern has a module of its own (pod, workloads, config, access, network, scaling); this
one decides which objects a spec gets, in the order they are registered.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from infra.platforms.kubernetes import access, config, network, scaling, workloads
from infra.platforms.kubernetes.target import Target
from infra.platforms.kubernetes.workloads import ROLLOUT_TIMEOUTS
from spec.platform import Deployed
from spec.service import ScheduledJob, ServiceSpec
from spec.volumes import ExistingSecretVolume


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
        tls_source: pulumi.Resource | None = None,
        image_pull_secrets: Sequence[str] = (),
    ) -> None:
        self.namespace = namespace
        self.instance = instance
        self.storage_class = storage_class
        self.public_service_type = public_service_type
        self.ingress_class = ingress_class
        self.host = host
        self.tls_secret = tls_secret
        self.tls_source = tls_source
        self._target = Target(
            namespace=namespace, instance=instance, image_pull_secrets=tuple(image_pull_secrets)
        )

    def deploy(
        self,
        spec: ServiceSpec,
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> Deployed:
        target = self._target
        opts = pulumi.ResourceOptions(parent=parent)
        account = access.service_account(target, spec, opts)
        if spec.secrets:
            config.secret(target, spec.prefix, spec.name, spec.secrets, opts)
        containers = (*spec.init_containers, *spec.containers)
        config.env_config_maps(target, spec.prefix, spec.name, containers, opts)
        config.files(target, spec.prefix, spec.name, spec.volumes, opts)
        if spec.node_metrics:
            access.node_metrics_reader(target, spec, account)
        # Whatever uses the certificate's Secret comes after what provides it (its Certificate,
        # or its lookup): pods mounting a Secret that does not exist never start.
        tls = [self.tls_source] if self.tls_source is not None else []
        mounts_tls = any(
            isinstance(v, ExistingSecretVolume) and v.secret_name == self.tls_secret
            for v in spec.volumes
        )
        # The provider's await logic (never skipped: no pulumi.com/skipAwait) fails `pulumi up`
        # when a rollout's new pods do not become ready within these timeouts.
        workload_opts = pulumi.ResourceOptions(
            parent=parent,
            depends_on=[*depends_on, *(tls if mounts_tls else [])],
            custom_timeouts=ROLLOUT_TIMEOUTS,
        )
        workloads.workload(target, spec, self.storage_class, workload_opts)
        if spec.service_ports:
            network.service(target, spec, self.public_service_type, opts)
        network.network_policy(target, spec, opts)
        if spec.min_available is not None:
            scaling.disruption_budget(target, spec, spec.min_available, opts)
        if spec.autoscaling is not None:
            scaling.autoscaler(target, spec, spec.autoscaling, opts)
        if spec.public and self.ingress_class:
            ingress_opts = pulumi.ResourceOptions(parent=parent, depends_on=tls)
            network.ingress(
                target, spec, self.ingress_class, self.host, self.tls_secret, ingress_opts
            )
        return Deployed(host=spec.name)

    def schedule(self, job: ScheduledJob, parent: pulumi.Resource) -> None:
        target = self._target
        opts = pulumi.ResourceOptions(parent=parent)
        if job.secrets:
            config.secret(target, job.name, job.name, job.secrets, opts)
        config.env_config_maps(target, job.name, job.name, (job.container,), opts)
        workloads.claims(target, job, self.storage_class, opts)
        config.files(target, job.name, job.name, job.volumes, opts)
        workloads.cronjob(target, job, opts)
