"""What runs a service's pods: a Deployment, or a StatefulSet with volume claim templates for a
service with data; and the CronJob (with its claims) of a scheduled job."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apps.v1 import DeploymentSpecArgsDict, StatefulSetSpecArgsDict
from pulumi_kubernetes.batch.v1 import CronJobSpecArgsDict, JobSpecArgsDict
from pulumi_kubernetes.core.v1 import PersistentVolumeClaimSpecArgsDict, PodTemplateSpecArgsDict

from infra.platforms.kubernetes.pod import job_pod, pod_template
from infra.platforms.kubernetes.target import Target
from spec.service import ScheduledJob, ServiceSpec
from spec.volumes import DataVolume

PROGRESS_DEADLINE_SECONDS = 600
"""A Deployment whose new pods are not ready by then is marked failed by Kubernetes itself."""
ROLLOUT_TIMEOUTS = pulumi.CustomTimeouts(create="15m", update="15m", delete="10m")
"""How long `pulumi up` waits for a workload to be ready. Longer than the progress deadline, so a
stuck Deployment fails with Kubernetes' own reason (ProgressDeadlineExceeded); StatefulSets have
no deadline of their own and this is their bound."""


def workload(
    target: Target, spec: ServiceSpec, storage_class: str | None, opts: pulumi.ResourceOptions
) -> None:
    """The service's StatefulSet (`stateful`) or Deployment."""
    template = pod_template(target, spec)
    metadata = target.metadata(spec.name, spec.name)
    if spec.stateful:
        k8s.apps.v1.StatefulSet(
            f"{spec.prefix}-statefulset",
            metadata=metadata,
            spec=_statefulset_spec(target, spec, template, storage_class),
            opts=opts,
        )
        return
    if any(isinstance(v, DataVolume) for v in spec.volumes):
        raise ValueError(f"{spec.name}: persistent volumes need stateful=True (a StatefulSet)")
    k8s.apps.v1.Deployment(
        f"{spec.prefix}-deployment",
        metadata=metadata,
        spec=_deployment_spec(target, spec, template),
        opts=opts,
    )


def claims(
    target: Target, job: ScheduledJob, storage_class: str | None, opts: pulumi.ResourceOptions
) -> None:
    """A PersistentVolumeClaim for each data volume of the job (a CronJob has no templates)."""
    for volume in job.volumes:
        if isinstance(volume, DataVolume):
            k8s.core.v1.PersistentVolumeClaim(
                f"{job.name}-{volume.name}",
                metadata=target.metadata(f"{job.name}-{volume.name}", job.name),
                spec=claim_spec(volume, storage_class),
                opts=opts,
            )


def cronjob(target: Target, job: ScheduledJob, opts: pulumi.ResourceOptions) -> None:
    """The job's CronJob: never two runs at once, a bounded run time, a few runs kept."""
    k8s.batch.v1.CronJob(
        f"{job.name}-cronjob",
        metadata=target.metadata(job.name, job.name),
        spec=_cronjob_spec(target, job),
        opts=opts,
    )


def claim_spec(volume: DataVolume, storage_class: str | None) -> PersistentVolumeClaimSpecArgsDict:
    """A ReadWriteOnce claim of the volume's size, of `storage_class` (None: the default)."""
    claim: PersistentVolumeClaimSpecArgsDict = {
        "access_modes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": volume.size}},
    }
    if storage_class:
        claim["storage_class_name"] = storage_class
    return claim


def _deployment_spec(
    target: Target, spec: ServiceSpec, template: PodTemplateSpecArgsDict
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
        "selector": {"match_labels": target.selector(spec.name)},
        "template": template,
    }


def _statefulset_spec(
    target: Target,
    spec: ServiceSpec,
    template: PodTemplateSpecArgsDict,
    storage_class: str | None,
) -> StatefulSetSpecArgsDict:
    return {
        "replicas": spec.replicas,
        "service_name": spec.name,
        "selector": {"match_labels": target.selector(spec.name)},
        "template": template,
        "volume_claim_templates": [
            {"metadata": {"name": v.name}, "spec": claim_spec(v, storage_class)}
            for v in spec.volumes
            if isinstance(v, DataVolume)
        ],
    }


def _cronjob_spec(target: Target, job: ScheduledJob) -> CronJobSpecArgsDict:
    return {
        "schedule": job.schedule,
        "concurrency_policy": "Forbid",
        "successful_jobs_history_limit": 3,
        "failed_jobs_history_limit": 3,
        "job_template": {"spec": _job_spec(target, job)},
    }


def _job_spec(target: Target, job: ScheduledJob) -> JobSpecArgsDict:
    return {
        "backoff_limit": 2,
        "active_deadline_seconds": job.deadline_seconds,
        "template": {"metadata": {"labels": target.labels(job.name)}, "spec": job_pod(target, job)},
    }
