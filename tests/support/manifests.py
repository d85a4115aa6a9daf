"""Compliant Kubernetes manifests for the gate's tests and benchmark: one Deployment as the
tests break it (`deployment`), and a synthetic stack as large as asked, what bench/gate_speed.py
times `python -m infra check --manifests` on and what its test checks passes every policy.

Each workload of the stack is one file with a Deployment (non-root, probes, limits, read-only
root, pinned image), its Service and its NetworkPolicy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "bench"


def deployment(
    name: str, namespace: str, replicas: int = 1, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Deployment that passes every resource policy, its pods labelled `labels` (default:
    `app.kubernetes.io/name: <name>`)."""
    labels = labels or {"app.kubernetes.io/name": name}
    probe = {"httpGet": {"path": "/healthz", "port": 8080}}
    container = {
        "name": name,
        "image": f"quay.io/example/{name}:v2.14.1",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "livenessProbe": probe,
        "readinessProbe": probe,
        "resources": {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"cpu": "100m", "memory": "128Mi"},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def workload(index: int) -> list[dict]:
    """The Deployment, Service and NetworkPolicy of workload number `index`."""
    name = f"svc-{index:05d}"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "bench"}
    probe = {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10}
    container = {
        "name": "app",
        "image": f"registry.example/bench/{name}:1.0.{index}",
        "ports": [{"containerPort": 8000, "name": "http"}],
        "livenessProbe": probe,
        "readinessProbe": probe,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 10001},
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "targetPort": 8000}],
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "bench"}}}
                    ],
                    "ports": [{"port": 8000, "protocol": "TCP"}],
                }
            ],
        },
    }
    return [deployment, service, policy]


def generate(directory: Path, workloads: int) -> int:
    """One file per workload; returns the number of resources written."""
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(workloads):
        documents = workload(index)
        (directory / f"svc-{index:05d}.yaml").write_text(
            yaml.safe_dump_all(documents, sort_keys=False)
        )
    return workloads * 3
