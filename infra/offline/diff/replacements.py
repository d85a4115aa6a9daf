"""Which changes `pulumi up` cannot apply in place, so that the resource is replaced: the
providers' own rules, with the upstream file and version each is taken from (the versions they
hold for are recorded in `infra.offline.upstream`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from infra.offline import providers
from infra.offline.diff.model import Path_
from spec import quantity

Pattern = tuple[str, ...]
"""A property path of the provider's table: keys, and "*" for any list index."""


def _paths(*dotted: str) -> tuple[Pattern, ...]:
    return tuple(tuple(p.replace("[*]", ".*").lstrip(".").split(".")) for p in dotted)


# pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/provider/diff.go#forceNew, by group, version and
# kind of the new object; `.metadata.name` and `.metadata.namespace` always
# (#metadataForceNewProperties), Secrets and ConfigMaps by the mutability flags below.
def _selector(prefix: str) -> tuple[str, ...]:
    # diff.go#labelSelectorForceNewProperties
    return (
        prefix,
        f"{prefix}.matchExpressions",
        f"{prefix}.matchExpressions.key",
        f"{prefix}.matchExpressions.operator",
        f"{prefix}.matchExpressions.values",
        f"{prefix}.matchLabels",
    )


def _container(prefix: str) -> tuple[str, ...]:
    # diff.go#containerForceNewProperties
    fields = ("args", "command", "env", "env.value", "image", "imagePullPolicy", "lifecycle",
              "livenessProbe", "ports", "readinessProbe", "resources", "securityContext",
              "stdin", "stdinOnce", "terminationMessagePath", "terminationMessagePolicy", "tty",
              "volumeDevices", "volumeMounts", "workingDir")  # fmt: skip
    return tuple(f"{prefix}.{field}" for field in fields)


_DEPLOYMENT: Final = _paths(*_selector(".spec.selector"))
# volumeClaimTemplates: in the table since v2.0.0; pulumi-kubernetes replaces the StatefulSet on
# such a change as listed from 4.29 on only (maintainer's comment on pulumi/pulumi-kubernetes#4328,
# no CHANGELOG entry), hence requirements.txt's floor.
_STATEFUL_SET: Final = _paths(
    ".spec.podManagementPolicy",
    ".spec.revisionHistoryLimit",
    ".spec.serviceName",
    ".spec.volumeClaimTemplates",
    *_selector(".spec.selector"),
)
_JOB: Final = _paths(
    ".spec.completions", ".spec.parallelism", ".spec.template", *_selector(".spec.selector")
)
_ROLE_BINDING: Final = _paths(".roleRef")
_VOLUME_SOURCES: Final = (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc",
    "flexVolume", "flocker", "gcePersistentDisk", "glusterfs", "hostPath", "iscsi", "local",
    "nfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos",
    "vsphereVolume",
)  # fmt: skip
_POD_SPEC: Final = (
    "affinity", "automountServiceAccountToken", "dnsConfig", "dnsPolicy", "enableServiceLinks",
    "hostAliases", "hostIPC", "hostNetwork", "hostPID", "hostname", "imagePullSecrets",
    "nodeName", "nodeSelector", "overhead", "preemptionPolicy", "priority", "priorityClassName",
    "readinessGates", "restartPolicy", "runtimeClassName", "schedulerName", "securityContext",
    "serviceAccount", "serviceAccountName", "shareProcessNamespace", "subdomain",
    "terminationGracePeriodSeconds", "volumes",
)  # fmt: skip
_CORE: Final[Mapping[str, Mapping[str, tuple[Pattern, ...]]]] = {
    "v1": {
        "PersistentVolume": _paths(*(f".spec.{source}" for source in _VOLUME_SOURCES)),
        # Not `.spec.resources`: a resize is an update (the API server refuses a shrink at up).
        "PersistentVolumeClaim": _paths(
            ".spec.accessModes",
            ".spec.storageClassName",
            ".spec.volumeName",
            *_selector(".spec.selector"),
        ),
        "Pod": _paths(
            *(f".spec.{field}" for field in _POD_SPEC),
            *_container(".spec.containers[*]"),
            *_container(".spec.initContainers[*]"),
        ),
        "ResourceQuota": _paths(".spec.scopes"),
        "Secret": _paths(".type"),
        # Only the clusterIP: a type change, to or from ExternalName too, is an update.
        "Service": _paths(".spec.clusterIP"),
    },
}
FORCE_NEW: Final[Mapping[str, Mapping[str, Mapping[str, tuple[Pattern, ...]]]]] = {
    "apps": {
        # .spec.selector replaces a Deployment or DaemonSet only after v1beta1 (diff.go).
        "v1beta1": {"StatefulSet": _STATEFUL_SET},
        "v1beta2": {
            "DaemonSet": _DEPLOYMENT,
            "Deployment": _DEPLOYMENT,
            "StatefulSet": _STATEFUL_SET,
        },
        "v1": {"DaemonSet": _DEPLOYMENT, "Deployment": _DEPLOYMENT, "StatefulSet": _STATEFUL_SET},
    },
    "core": _CORE,
    "": _CORE,
    "policy": {"v1beta1": {"PodDisruptionBudget": _paths(".spec")}},
    "rbac.authorization.k8s.io": {
        version: {"ClusterRoleBinding": _ROLE_BINDING, "RoleBinding": _ROLE_BINDING}
        for version in ("v1alpha1", "v1beta1", "v1")
    },
    "storage.k8s.io": {"v1": {"StorageClass": _paths(".parameters", ".provisioner")}},
    "batch": {version: {"Job": _JOB} for version in ("v1beta1", "v1", "v2alpha1")},
}
_METADATA: Final = _paths(".metadata.name", ".metadata.namespace")
_SECRET_IMMUTABLE: Final = _paths(".type", ".stringData", ".data")
_CONFIG_MAP_IMMUTABLE: Final = _paths(".binaryData", ".data")
# The version the table was read at; `kubernetes:enableSecretMutable` exists since 4.18.0 and
# both flags are stable since 4.24.0 (CHANGELOG.md of the same tag).


@dataclass(frozen=True, kw_only=True)
class KubernetesConfig:
    """The provider settings the replacement rules depend on."""

    enable_config_map_mutable: bool = False
    enable_secret_mutable: bool = False

    @classmethod
    def of(
        cls, config: Mapping[str, str], environ: Mapping[str, str] = os.environ
    ) -> KubernetesConfig:
        """From the provider's config (keys without `kubernetes:`), else the environment, as
        provider.go#Configure reads them."""
        return cls(
            enable_config_map_mutable=providers.provider_flag(
                config, "enableConfigMapMutable", "PULUMI_K8S_ENABLE_CONFIGMAP_MUTABLE", environ
            ),
            enable_secret_mutable=providers.provider_flag(
                config, "enableSecretMutable", "PULUMI_K8S_ENABLE_SECRET_MUTABLE", environ
            ),
        )


def kubernetes_force_new(
    new: Mapping[str, Any], config: KubernetesConfig
) -> tuple[tuple[Pattern, str], ...]:
    """Per pattern, why it forces a replacement of the object `new` (the new inputs):
    diff.go#(*kubeProvider).forceNewProperties."""
    api_version = str(new.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    kind = str(new.get("kind", ""))
    rules = [(p, f"the object's {p[-1]} cannot change") for p in _METADATA]
    kinds = FORCE_NEW.get(group, {}).get(version)
    if kinds is None:
        return tuple(rules)
    immutable = providers.plain(new.get("immutable")) is True
    if kind == "Secret" and (not config.enable_secret_mutable or immutable):
        why = "the Secret is immutable" if immutable else "enableSecretMutable is off"
        rules += [(p, f"Secrets are replaced on change ({why})") for p in _SECRET_IMMUTABLE]
    elif kind in kinds:
        rules += [(p, f"{kind} {'.'.join(p)} is immutable") for p in kinds[kind]]
    elif kind == "ConfigMap" and (not config.enable_config_map_mutable or immutable):
        why = "the ConfigMap is immutable" if immutable else "enableConfigMapMutable is off"
        rules += [(p, f"ConfigMaps are replaced on change ({why})") for p in _CONFIG_MAP_IMMUTABLE]
    return tuple(rules)


def _matches(path: Path_, pattern: Pattern) -> bool:
    """A changed path matches a listed one below it, or above it (a whole block added or
    removed): provider/pkg/openapi/match.go#PatchPropertiesChanged on the patch of each change."""
    shape = tuple("*" if isinstance(part, int) else part for part in path)
    length = min(len(shape), len(pattern))
    return shape[:length] == pattern[:length]


def replacement(
    type_token: str,
    kubernetes: bool,
    path: Path_,
    old: Any,
    new: Any,
    *,
    document: Mapping[str, Any] | None = None,
    config: KubernetesConfig | None = None,
) -> str | None:
    """Why changing `path` from `old` to `new` replaces the resource; None: updated in place.
    `document` is the new manifest (Kubernetes) and `config` its provider's settings."""
    if kubernetes:
        rules = kubernetes_force_new(
            document or _from_token(type_token), config or KubernetesConfig()
        )
        for pattern, reason in rules:
            if _matches(path, pattern):
                return reason
        return None
    # A type without a table never replaces: docker.Image's Diff reports updates only
    # (pulumi/pulumi-docker@v5.1.0:provider/provider.go#diffUpdates).
    updatable = providers.UPDATABLE_INPUTS.get(type_token)
    if updatable is not None and path and path[0] not in updatable:
        return f"`{path[0]}` cannot be updated in place ({type_token.split(':')[-1]})"
    return None


def _from_token(type_token: str) -> dict[str, str]:
    _, group_version, kind = type_token.split(":")
    group, _, version = group_version.rpartition("/")
    return {"apiVersion": version if group == "core" else group_version, "kind": kind}


def shrink_warning(type_token: str, path: Path_, old: Any, new: Any) -> str | None:
    """A PersistentVolumeClaim's storage request made smaller: an update the API server refuses
    at `pulumi up` (a claim can only grow)."""
    if not type_token.endswith(":PersistentVolumeClaim"):
        return None
    if path != ("spec", "resources", "requests", "storage"):
        return None
    before, after = _quantity(old), _quantity(new)
    if before is not None and after is not None and after < before:
        return (
            f"the claim shrinks from {old} to {new}: Kubernetes refuses to shrink a claim, so "
            "`pulumi up` fails on this update"
        )
    return None


def _quantity(value: Any) -> Fraction | None:
    try:
        return quantity.parse(str(value))
    except ValueError:
        return None
