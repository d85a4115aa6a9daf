"""Builders of the policy pack's inputs, for the tests of the pack (tests/policies/) run against
the real pack process over the Analyzer gRPC protocol; tests/support/diagnostics.py reads what
the pack answers.

Every builder produces a compliant resource; a test breaks one thing and checks which policy
fires, at which level, and that the message names the container and the field path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.offline.analyzer import Resource

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
CONFIG_DIR = PACK_DIR / "config"

EXEMPT = "policy.safeguard.dev/exempt-"

TYPES = {
    "Pod": "kubernetes:core/v1:Pod",
    "Deployment": "kubernetes:apps/v1:Deployment",
    "StatefulSet": "kubernetes:apps/v1:StatefulSet",
    "DaemonSet": "kubernetes:apps/v1:DaemonSet",
    "ReplicaSet": "kubernetes:apps/v1:ReplicaSet",
    "Job": "kubernetes:batch/v1:Job",
    "CronJob": "kubernetes:batch/v1:CronJob",
}
POD_PATH = {
    "Pod": "spec",
    "CronJob": "spec.jobTemplate.spec.template.spec",
}
DOCKER = "docker:index/container:Container"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE = "kubernetes:core/v1:Service"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
LABELS = {"app.kubernetes.io/name": "api", "app.kubernetes.io/component": "api"}


def security_context(**changes: Any) -> dict[str, Any]:
    """A hardened container securityContext; a change to None removes the field."""
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    context.update(changes)
    return {k: v for k, v in context.items() if v is not None}


def container(name: str = "api", **changes: Any) -> dict[str, Any]:
    """A compliant container; a change to None removes the field."""
    spec: dict[str, Any] = {
        "name": name,
        "image": "ghcr.io/safeguard/api:1.4.2",
        "securityContext": security_context(),
        "livenessProbe": {"httpGet": {"path": "/livez", "port": 8000}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000}},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "env": [
            {"name": "CORS_ALLOW_ORIGINS", "value": "https://app.example.com"},
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
            },
        ],
    }
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def init_container(name: str = "migrate", **changes: Any) -> dict[str, Any]:
    return container(name, livenessProbe=None, readinessProbe=None, **changes)


def workload(
    kind: str,
    *containers: dict[str, Any],
    name: str = "api",
    namespace: str | None = "safeguard",
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    replicas: int | None = None,
    **pod: Any,
) -> Resource:
    """A Kubernetes workload of `kind` whose pod runs `containers` (default: one compliant)."""
    pod_spec = {"containers": list(containers) or [container()], **pod}
    pod_metadata: dict[str, Any] = {"labels": labels or LABELS}
    if template_annotations:
        pod_metadata["annotations"] = template_annotations
    metadata: dict[str, Any] = {"name": name, "labels": labels or LABELS}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    template = {"metadata": pod_metadata, "spec": pod_spec}
    if kind == "Pod":
        metadata["labels"] = labels or LABELS
        spec: dict[str, Any] = pod_spec
    elif kind == "CronJob":
        spec = {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        spec = {"template": template}
        if kind != "Job":
            spec["selector"] = {"matchLabels": labels or LABELS}
        if replicas is not None:
            spec["replicas"] = replicas
    return Resource(type=TYPES[kind], name=name, properties={"metadata": metadata, "spec": spec})


def deployment(*containers: dict[str, Any], **kwargs: Any) -> Resource:
    return workload("Deployment", *containers, **kwargs)


def docker(name: str = "api", **changes: Any) -> Resource:
    """A compliant Docker container; a change to None removes the field."""
    props: dict[str, Any] = {
        "name": name,
        "image": "ghcr.io/safeguard/api:1.4.2",
        "user": "10001:10001",
        "healthcheck": {"tests": ["CMD", "/app/healthcheck"], "interval": "10s"},
        "envs": ["CORS_ALLOW_ORIGINS=https://app.example.com", "LOG_LEVEL=info"],
        "memory": 256,
        "cpus": "0.5",
        "readOnly": True,
        "capabilities": {"drops": ["ALL"]},
        "networkMode": "bridge",
        "labels": [{"label": "app.kubernetes.io/name", "value": "api"}],
    }
    props.update(changes)
    return Resource(
        type=DOCKER, name=name, properties={k: v for k, v in props.items() if v is not None}
    )


def k8s(kind_type: str, name: str, namespace: str = "safeguard", **fields: Any) -> Resource:
    metadata = {"name": name, "namespace": namespace, **fields.pop("metadata", {})}
    return Resource(type=kind_type, name=name, properties={"metadata": metadata, **fields})


def network_policy(match_labels: dict[str, str] | None, namespace: str = "safeguard") -> Resource:
    selector = {} if match_labels is None else {"matchLabels": match_labels}
    return k8s(NETWORK_POLICY, "np", namespace, spec={"podSelector": selector})


def ingress(annotations: dict[str, str]) -> Resource:
    return k8s(INGRESS, "edge", metadata={"annotations": annotations}, spec={"rules": []})


def pdb(match_labels: dict[str, str]) -> Resource:
    return k8s(PDB, "api", spec={"minAvailable": 1, "selector": {"matchLabels": match_labels}})
