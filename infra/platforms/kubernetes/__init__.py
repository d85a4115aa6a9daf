"""The Kubernetes back end: `KubernetesPlatform` deploys ServiceSpecs into the namespace that
`prepare_namespace` creates for the stack."""

from infra.platforms.kubernetes.namespace import prepare_namespace
from infra.platforms.kubernetes.platform import KubernetesPlatform
from infra.platforms.kubernetes.workloads import PROGRESS_DEADLINE_SECONDS, ROLLOUT_TIMEOUTS

__all__ = [
    "PROGRESS_DEADLINE_SECONDS",
    "ROLLOUT_TIMEOUTS",
    "KubernetesPlatform",
    "prepare_namespace",
]
