"""Which changes `pulumi up` cannot apply in place, so that the resource is replaced: the
providers' own rules, with the upstream file and version each is taken from."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from infra.offline.diff.model import Path_
from spec import quantity

# Why a change cannot be applied in place, by resource type. Kubernetes: the provider's table of
# properties that force replacement (pulumi-kubernetes v4, provider/pkg/provider/diff.go, with
# ConfigMaps and Secrets immutable as long as `enableConfigMapMutable`/`enableSecretMutable` are
# off, their default). A rule matches a changed path below it, or above it (the whole block added
# or removed).
_METADATA_RULES: tuple[tuple[Path_, str], ...] = (
    (("metadata", "name"), "the object's name cannot change"),
    (("metadata", "namespace"), "the object's namespace cannot change"),
)
_SELECTOR = "the label selector is immutable"
_KUBERNETES_RULES: dict[str, tuple[tuple[Path_, str], ...]] = {
    "apps/v1:Deployment": ((("spec", "selector"), _SELECTOR),),
    "apps/v1:DaemonSet": ((("spec", "selector"), _SELECTOR),),
    "apps/v1:StatefulSet": (
        (("spec", "selector"), _SELECTOR),
        (("spec", "serviceName"), "a StatefulSet's serviceName is immutable"),
        (
            ("spec", "volumeClaimTemplates"),
            "volumeClaimTemplates are immutable: the StatefulSet is recreated (its existing PVCs "
            "stay and are not resized)",
        ),
        (("spec", "podManagementPolicy"), "podManagementPolicy is immutable"),
        (("spec", "revisionHistoryLimit"), "pulumi-kubernetes replaces on revisionHistoryLimit"),
    ),
    "batch/v1:Job": (
        (("spec", "selector"), _SELECTOR),
        (("spec", "template"), "a Job's pod template is immutable"),
        (("spec", "completions"), "a Job's completions are immutable"),
        (("spec", "parallelism"), "pulumi-kubernetes replaces on a Job's parallelism"),
    ),
    "core/v1:PersistentVolumeClaim": (
        (("spec", "accessModes"), "a claim's access modes are immutable"),
        (("spec", "selector"), "a claim's selector is immutable"),
        (("spec", "storageClassName"), "a claim's storage class is immutable"),
        (("spec", "volumeName"), "a claim's volume is immutable"),
    ),
    "core/v1:Service": ((("spec", "clusterIP"), "a Service's clusterIP is immutable"),),
    "core/v1:Secret": (
        (("type",), "a Secret's type is immutable"),
        (("data",), "Secrets are replaced on change (enableSecretMutable is off)"),
        (("stringData",), "Secrets are replaced on change (enableSecretMutable is off)"),
    ),
    "core/v1:ConfigMap": (
        (("data",), "ConfigMaps are replaced on change (enableConfigMapMutable is off)"),
        (("binaryData",), "ConfigMaps are replaced on change (enableConfigMapMutable is off)"),
    ),
    "rbac.authorization.k8s.io/v1:ClusterRoleBinding": ((("roleRef",), "roleRef is immutable"),),
    "rbac.authorization.k8s.io/v1:RoleBinding": ((("roleRef",), "roleRef is immutable"),),
    "storage.k8s.io/v1:StorageClass": (
        (("parameters",), "a StorageClass's parameters are immutable"),
        (("provisioner",), "a StorageClass's provisioner is immutable"),
    ),
}

# Bridged Terraform providers: every input forces replacement except these, which the provider
# updates in place. Container: the non-ForceNew attributes of kreuzwerker/terraform-provider-docker
# (internal/provider/resource_docker_container.go, the provider pulumi-docker 4.x/5.x bridges; the
# pulumi_docker Python package ships no schema to read them from). Networks, volumes and random
# passwords have no updatable input at all.
_UPDATABLE_INPUTS: dict[str, frozenset[str]] = {
    "docker:index/container:Container": frozenset(
        {
            "attach",
            "containerReadRefreshTimeoutMilliseconds",
            "cpuPeriod",
            "cpuQuota",
            "cpuSet",
            "cpuShares",
            "destroyGraceSeconds",
            "healthcheck",
            "init",
            "logs",
            "maxRetryCount",
            "memory",
            "memorySwap",
            "mustRun",
            "removeVolumes",
            "restart",
            "rm",
            "start",
            "tmpfs",
            "wait",
            "waitTimeout",
        }
    ),
    "docker:index/network:Network": frozenset(),
    "docker:index/volume:Volume": frozenset(),
    "docker:index/remoteImage:RemoteImage": frozenset({"forceRemove", "keepLocally"}),
    "random:index/randomPassword:RandomPassword": frozenset(),
}


def replacement(type_token: str, kubernetes: bool, path: Path_, old: Any, new: Any) -> str | None:
    """Why changing `path` from `old` to `new` replaces the resource; None: updated in place."""
    if kubernetes:
        group_kind = type_token.removeprefix("kubernetes:")
        for rule, reason in (*_METADATA_RULES, *_KUBERNETES_RULES.get(group_kind, ())):
            if path[: len(rule)] == rule or rule[: len(path)] == path:
                return reason
        return _special_kubernetes_rule(group_kind, path, old, new)
    updatable = _UPDATABLE_INPUTS.get(type_token)
    if updatable is not None and path and path[0] not in updatable:
        return f"`{path[0]}` cannot be updated in place ({type_token.split(':')[-1]})"
    return None


def _special_kubernetes_rule(group_kind: str, path: Path_, old: Any, new: Any) -> str | None:
    if (
        group_kind == "core/v1:Service"
        and path == ("spec", "type")
        and "ExternalName" in (old, new)
    ):
        return "a Service changing to or from ExternalName gains or loses its clusterIP"
    if group_kind == "core/v1:PersistentVolumeClaim" and path[:2] == ("spec", "resources"):
        if path == ("spec", "resources", "requests", "storage"):
            before, after = _quantity(old), _quantity(new)
            if before is not None and after is not None and after < before:
                return "a claim can only grow: Kubernetes refuses to shrink it"
            return None
        return "a claim's resources other than its storage request are immutable"
    return None


def _quantity(value: Any) -> Fraction | None:
    try:
        return quantity.parse(str(value))
    except ValueError:
        return None
