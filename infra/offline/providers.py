"""What the engine and the providers make of a registered resource, without the engine: the
secret markers the engine keeps, the provider's Check (the inputs every analyzer receives) and
its Create (the outputs the program and AnalyzeStack receive), for a first preview or for the
update that follows it; and what a read step (a resource's `get`) returns, or how it fails.

Every rule cites the upstream file it was read from; `infra.offline.upstream` records the tags
and the installed versions they hold for.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import importlib.metadata
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from infra.offline.analyzer import Provider
from infra.offline.wire import SECRET_SIG, SIG_KEY, UNKNOWN

Props = dict[str, Any]


# --- secrets and unknowns in the wire format --------------------------------------------------


def is_secret(value: Any) -> bool:
    """True for a value the wire format marks as secret."""
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": value}


def plain(value: Any) -> Any:
    """The value with every secret marker removed, as a provider that takes no secrets gets it."""
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _anywhere(value: Any, found: Callable[[Any], bool]) -> bool:
    if found(value):
        return True
    if isinstance(value, dict):
        return any(_anywhere(v, found) for v in value.values())
    if isinstance(value, list):
        return any(_anywhere(v, found) for v in value)
    return False


def contains_secret(value: Any) -> bool:
    return _anywhere(value, is_secret)


def contains_unknown(value: Any) -> bool:
    return _anywhere(value, lambda v: v == UNKNOWN)


def annotate_secrets(outputs: Props, inputs: Mapping[str, Any]) -> Props:
    """`outputs` with the secret bit of `inputs` kept the way the engine keeps it for a
    provider that takes no secrets: objects are followed key by key, any other value (a list,
    a string) that holds a secret anywhere becomes one secret as a whole
    (pulumi/pulumi@v3.259.0:pkg/resource/plugin/provider_plugin.go#annotateSecrets, applied to
    Check's and Create's results). So one secret entry of a Docker `envs` list makes the whole
    list secret, as every analyzer then sees it."""
    result = dict(outputs)
    for key, given in inputs.items():
        if key not in result:
            continue
        value = result[key]
        if _is_object(value) and _is_object(given):
            result[key] = annotate_secrets(value, given)
        elif not is_secret(value) and contains_secret(given):
            result[key] = secret(value)
    return result


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) and not is_secret(value)


def digest(*parts: Any) -> str:
    """A stable hex digest of `parts`: the same program always gets the same ids."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def uuid_of(text: str) -> str:
    """A version-4-shaped UUID derived from `text`, where the engine draws a random one (the
    ids of providers)."""
    hex_digest = digest(text)
    return (
        f"{hex_digest[:8]}-{hex_digest[8:12]}-4{hex_digest[13:16]}-8{hex_digest[17:20]}-"
        f"{hex_digest[20:32]}"
    )


def default_provider(
    package: str, stack: str, config: Mapping[str, str] | None = None, project: str = "safeguard"
) -> Provider:
    """The provider the engine creates for `package` when the program names none: named
    `default_<major>_<minor>_<patch>`, no parent, configured with the package's stack config
    and its version (pulumi/pulumi@v3.259.0:pkg/resource/deploy/providers/provider.go
    #DefaultName; registry.go#SetProviderVersion)."""
    version = _sdk_version(package)
    name = f"default_{version.replace('.', '_')}" if version else "default"
    token = f"pulumi:providers:{package}"
    prefix = f"{package}:"
    properties: dict[str, Any] = {
        key[len(prefix) :]: value for key, value in (config or {}).items() if key.startswith(prefix)
    }
    if version:
        properties["version"] = version
    return Provider(
        type=token,
        name=name,
        urn=f"urn:pulumi:{stack}::{project}::{token}::{name}",
        properties=properties,
    )


@functools.cache
def _sdk_version(package: str) -> str:
    try:
        return importlib.metadata.version(f"pulumi_{package}")
    except importlib.metadata.PackageNotFoundError:
        return ""


# --- Kubernetes ------------------------------------------------------------------------------

# pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/kinds/kinds.go#Kind.Namespaced: the built-in
# kinds the provider knows to be cluster-scoped. A kind in neither list (a custom resource) is
# taken as namespaced (provider.go#Check on NoNamespaceInfoErr).
_CLUSTER_SCOPED: Final = frozenset(
    {"APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding",
     "CSIDriver", "CSINode", "CustomResourceDefinition", "FlowSchema", "IngressClass",
     "MutatingWebhookConfiguration", "Namespace", "Node", "PersistentVolume",
     "PodSecurityPolicy", "PriorityClass", "PriorityLevelConfiguration", "RuntimeClass",
     "StorageClass", "ValidatingWebhookConfiguration", "VolumeAttachment"}
)  # fmt: skip
# normalizeInputs always drops these (provider.go#normalizeInputs).
_READ_ONLY_METADATA: Final = (
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "generation",
    "managedFields",
    "resourceVersion",
    "uid",
)
AUTONAMED: Final = "pulumi.com/autonamed"


def namespaced(kind: str) -> bool:
    """Whether the Kubernetes provider treats `kind` as namespaced."""
    return kind.removesuffix("List") not in _CLUSTER_SCOPED


@dataclass(frozen=True, kw_only=True)
class KubeContext:
    """What the Kubernetes provider's Configure decides that Check uses."""

    default_namespace: str | None
    """Set on namespaced objects without one; None when the provider has none (no `namespace`
    config and no usable kubeconfig)."""
    enable_config_map_mutable: bool = False
    enable_secret_mutable: bool = False


def kube_context(config: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> KubeContext:
    """The provider's settings from its config (`namespace`, `context`, `kubeconfig`,
    `enableConfigMapMutable`, `enableSecretMutable`, keys without the `kubernetes:` prefix)
    and the ambient kubeconfig, as pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/provider/
    provider.go#Configure resolves them: the `namespace` config, else the namespace of the
    kubeconfig's context (kubernetes/client-go@v0.36.2:tools/clientcmd/client_config.go
    #(*DirectClientConfig).Namespace: `default` when the context sets none), else none at all
    when no kubeconfig is usable (merged_client_builder.go#Namespace returns the error and the
    provider keeps its namespace unset). In-cluster configuration is not looked at."""
    explicit = config.get("namespace") or None
    loaded = _kubeconfig(config.get("kubeconfig"), environ)
    namespace = explicit
    if namespace is None and loaded is not None:
        namespace = _context_namespace(loaded, config.get("context") or "")
    return KubeContext(
        default_namespace=namespace,
        enable_config_map_mutable=provider_flag(
            config, "enableConfigMapMutable", "PULUMI_K8S_ENABLE_CONFIGMAP_MUTABLE", environ
        ),
        enable_secret_mutable=provider_flag(
            config, "enableSecretMutable", "PULUMI_K8S_ENABLE_SECRET_MUTABLE", environ
        ),
    )


def provider_flag(
    config: Mapping[str, str], key: str, variable: str, environ: Mapping[str, str] = os.environ
) -> bool:
    # provider.go#Configure: the provider config, else the environment variable; "true" only.
    value = config.get(key)
    if value is None:
        value = environ.get(variable)
    return value == "true"


def _kubeconfig(given: str | None, environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The merged kubeconfig: the `kubeconfig` config (a path or the file's contents), else
    $KUBECONFIG's files (first value of each name wins), else ~/.kube/config."""
    documents: list[Any] = []
    if given:
        path = Path(given).expanduser()
        text = path.read_text() if path.is_file() else given
        documents.append(_yaml(text))
    else:
        paths = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        if not paths:
            paths = [str(Path(environ.get("HOME", str(Path.home()))) / ".kube" / "config")]
        documents += [_yaml(Path(p).read_text()) for p in paths if Path(p).is_file()]
    documents = [d for d in documents if isinstance(d, dict)]
    if not documents:
        return None
    merged: dict[str, Any] = {"current-context": "", "contexts": {}, "clusters": {}}
    for document in documents:
        if not merged["current-context"] and isinstance(document.get("current-context"), str):
            merged["current-context"] = document["current-context"]
        for section in ("contexts", "clusters"):
            for entry in document.get(section) or []:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    merged[section].setdefault(entry["name"], entry.get(section[:-1]) or {})
    return merged


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _context_namespace(kubeconfig: Mapping[str, Any], override: str) -> str | None:
    name = override or kubeconfig["current-context"]
    context = kubeconfig["contexts"].get(name)
    # ConfirmUsable: the context and its cluster must exist, else the namespace stays unset.
    if not isinstance(context, dict) or context.get("cluster") not in kubeconfig["clusters"]:
        return None
    namespace = context.get("namespace")
    return namespace if isinstance(namespace, str) and namespace else "default"


def kubernetes_check(inputs: Props, urn: str, context: KubeContext) -> Props:
    """The Kubernetes provider's Check (pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/
    provider/provider.go#(*kubeProvider).Check) on a new resource's wire-format inputs, for what
    the policies read:

    - normalizeInputs: with no unknown value anywhere, a Secret's non-empty `stringData` is
      base64-encoded into `data` and removed, or its `data` values re-encoded
      (provider/pkg/clients/unstructured.go#normalizeSecret); read-only metadata is dropped;
    - autonaming: an object with neither `metadata.name` nor `metadata.generateName` gets
      `<URN name>-<8 hex characters>` and the `pulumi.com/autonamed: "true"` annotation
      (provider/pkg/metadata/naming.go#AssignNameIfAutonamable; the engine seeds the random
      part, here it is a digest of the URN);
    - a namespaced object without `metadata.namespace` gets the provider's default namespace;
    - secrets: a Secret's `data` and `stringData` are secret as a whole; elsewhere any list
      holding a secret becomes one secret (provider.go#annotateSecrets).

    The typed round trip of normalizeInputs (which canonicalizes values without adding fields)
    and the OpenAPI validation against a live cluster are not done.
    """
    checked = copy.deepcopy(plain(inputs))
    metadata = checked.get("metadata")
    if not isinstance(metadata, dict):
        metadata = checked["metadata"] = {}
    kind = checked.get("kind")
    if not contains_unknown(checked) and kind == "Secret" and checked.get("apiVersion") == "v1":
        _normalize_secret(checked)
    for key in _READ_ONLY_METADATA:
        metadata.pop(key, None)
    if not metadata.get("name") and not metadata.get("generateName"):
        metadata["name"] = f"{urn.rsplit('::', 1)[-1]}-{digest(urn)[:8]}"
        annotations = metadata.get("annotations")
        if not isinstance(annotations, dict):
            annotations = metadata["annotations"] = {}
        annotations[AUTONAMED] = "true"
    if (
        context.default_namespace
        and not metadata.get("namespace")
        and isinstance(kind, str)
        and namespaced(kind)
    ):
        metadata["namespace"] = context.default_namespace
    if kind == "Secret":
        for key in ("data", "stringData"):
            if key in checked:
                checked[key] = secret(checked[key])
        return checked
    return annotate_secrets(checked, inputs)


def _normalize_secret(manifest: Props) -> None:
    string_data = manifest.get("stringData")
    data = manifest.get("data") if isinstance(manifest.get("data"), dict) else {}
    if isinstance(string_data, dict) and string_data:
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        manifest["data"] = data
        del manifest["stringData"]
        return
    for key, value in data.items():
        if isinstance(value, str):
            try:
                data[key] = base64.b64encode(base64.b64decode(value)).decode()
            except (binascii.Error, ValueError):
                continue


def kubernetes_id(checked: Mapping[str, Any]) -> str:
    """`<namespace>/<name>`, or the name alone (provider/pkg/provider/util.go#fqObjName)."""
    metadata = plain(checked.get("metadata")) or {}
    namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
    return f"{namespace}/{name}" if namespace else name


# --- Docker (kreuzwerker/terraform-provider-docker, bridged by pulumi-docker) ----------------

CONTAINER: Final = "docker:index/container:Container"
NETWORK: Final = "docker:index/network:Network"
VOLUME: Final = "docker:index/volume:Volume"
REMOTE_IMAGE: Final = "docker:index/remoteImage:RemoteImage"
IMAGE: Final = "docker:index/image:Image"
RANDOM_PASSWORD: Final = "random:index/randomPassword:RandomPassword"

# The Terraform defaults the bridge fills into the checked inputs
# (pulumi/pulumi-terraform-bridge@v3.136.0:pkg/tfbridge/provider.go#(*Provider).Check;
# the defaults of kreuzwerker/terraform-provider-docker@v4.5.0:internal/provider/
# resource_docker_container.go#resourceDockerContainer).
_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    NETWORK: {"ipamDriver": "default"},
    REMOTE_IMAGE: {"platform": ""},
}
_CONTAINER_DEFAULTS: Final[Mapping[str, Any]] = {
    "attach": False,
    "containerReadRefreshTimeoutMilliseconds": 15000,
    "logs": False,
    "memoryReservation": 0,
    "mustRun": True,
    "networkMode": "bridge",
    "readOnly": False,
    "removeVolumes": True,
    "restart": "no",
    "rm": False,
    "start": True,
    "stdinOpen": False,
    "tty": False,
    "wait": False,
    "waitTimeout": 60,
}
# What a first preview leaves unknown: the Computed-only attributes, and the Optional+Computed
# ones the program did not set (same resource files at v4.5.0; the bridge's preview Create
# returns the planned state, pkg/tfbridge/provider.go#(*Provider).Create).
_COMPUTED: Final[Mapping[str, tuple[str, ...]]] = {
    CONTAINER: ("bridge", "containerLogs", "exitCode", "networkDatas"),
    NETWORK: ("scope",),
    VOLUME: ("mountpoint",),
    REMOTE_IMAGE: ("imageId", "repoDigest"),
}
_OPTIONAL_COMPUTED: Final[Mapping[str, tuple[str, ...]]] = {
    CONTAINER: ("command", "entrypoints", "envs", "healthcheck", "hostname", "init", "ipcMode",
                "labels", "logDriver", "platform", "runtime", "securityOpts", "shmSize",
                "stopSignal", "stopTimeout"),
    NETWORK: ("driver", "internal", "ipamConfigs", "options"),
    VOLUME: ("driver", "name"),
}  # fmt: skip
# docker.Image is native: a preview that does not build returns the checked inputs, so its
# output-only properties stay unknown (pulumi/pulumi-docker@v5.1.0:provider/provider.go
# #(*dockerNativeProvider).Create and #canPreview; buildOnPreview defaults to false).
_IMAGE_OUTPUTS: Final = (
    "baseImageName",
    "context",
    "dockerfile",
    "platform",
    "registryServer",
    "repoDigest",
)
# A RandomPassword's defaulted inputs and computed results (hashicorp/
# terraform-provider-random@v3.9.0:internal/provider/resource_password.go#passwordSchemaV3).
_PASSWORD_DEFAULTS: Final[Mapping[str, Any]] = {
    "lower": True,
    "minLower": 0,
    "minNumeric": 0,
    "minSpecial": 0,
    "minUpper": 0,
    "number": True,
    "numeric": True,
    "special": True,
    "upper": True,
}


# The inputs each bridged resource updates in place; every other input forces a replacement
# (Terraform ForceNew / RequiresReplace). Container: the attributes without ForceNew in
# kreuzwerker/terraform-provider-docker@v4.5.0:internal/provider/resource_docker_container.go
# #resourceDockerContainer (inputs added after v4.5.0, such as 5.2.0's deviceCgroupRules, count
# as forcing); Network (resource_docker_network.go) has no Update, a Volume updates only
# `cluster` (resource_docker_volume.go), a RemoteImage `keepLocally` and `forceRemove`
# (resource_docker_image.go); every RandomPassword input requires replacement
# (hashicorp/terraform-provider-random@v3.9.0:internal/provider/resource_password.go).
UPDATABLE_INPUTS: Final[Mapping[str, frozenset[str]]] = {
    CONTAINER: frozenset(
        {"attach", "containerReadRefreshTimeoutMilliseconds", "cpuPeriod", "cpuQuota", "cpuSet",
         "cpuShares", "destroyGraceSeconds", "deviceReadBps", "deviceReadIops", "deviceWriteBps",
         "deviceWriteIops", "healthcheck", "init", "logs", "maxRetryCount", "memory",
         "memoryReservation", "memorySwap", "mustRun", "removeVolumes", "restart", "rm", "start",
         "tmpfs", "wait", "waitTimeout"}
    ),
    NETWORK: frozenset(),
    VOLUME: frozenset({"cluster"}),
    REMOTE_IMAGE: frozenset({"forceRemove", "keepLocally"}),
    RANDOM_PASSWORD: frozenset(),
}  # fmt: skip
# Terraform TypeSet attributes (same files): their elements have no order, so a reordering is
# no change. Paths in Pulumi's camelCase names.
SET_INPUTS: Final[Mapping[str, frozenset[tuple[str, ...]]]] = {
    CONTAINER: frozenset(
        (name,)
        for name in ("devices", "deviceReadBps", "deviceReadIops", "deviceRequests",
                     "deviceWriteBps", "deviceWriteIops", "dns", "dnsOpts", "dnsSearches",
                     "envs", "groupAdds", "hosts", "labels", "mounts", "networksAdvanced",
                     "securityOpts", "ulimits", "uploads", "volumes")
    )
    | {("capabilities", "adds"), ("capabilities", "drops")},
    NETWORK: frozenset({("labels",), ("ipamConfigs",)}),
    VOLUME: frozenset({("labels",)}),
}  # fmt: skip


def _identity(type_: str, checked: Mapping[str, Any]) -> Any:
    """What a provider-made id depends on: the inputs a change of which replaces the resource
    (an update in place keeps the id)."""
    updatable = UPDATABLE_INPUTS.get(type_)
    values = plain(checked)
    if updatable is None:
        return values
    return {k: v for k, v in values.items() if k not in updatable}


def check(type_: str, urn: str, inputs: Props, context: KubeContext) -> Props:
    """The inputs after the provider's Check, secrets marked as the engine marks them."""
    if type_.startswith("kubernetes:"):
        return kubernetes_check(inputs, urn, context)
    checked = plain(inputs)
    defaults = _CONTAINER_DEFAULTS if type_ == CONTAINER else _DEFAULTS.get(type_, {})
    checked = {**defaults, **checked}
    return annotate_secrets(checked, inputs)


def create(
    type_: str, urn: str, checked: Props, *, preview: bool, additional_secrets: tuple[str, ...]
) -> tuple[str, Props]:
    """(id, outputs) of a Create: in a preview the id is "" (unknown) and what the provider
    computes is the unknown sentinel; otherwise deterministic placeholders stand for them.
    `additional_secrets` are the resource's additionalSecretOutputs, which the engine marks
    secret (pulumi/pulumi@v3.259.0:pkg/resource/deploy/step_executor.go#continueExecuteStep)."""
    outputs = dict(checked)
    token = digest(type_, urn, _identity(type_, checked))
    if type_.startswith("kubernetes:"):
        # A first preview returns the checked inputs: the namespace it would be created in does
        # not exist yet, or the cluster is not reachable (pulumi/pulumi-kubernetes@v4.32.0:
        # provider/pkg/provider/provider.go#(*kubeProvider).Create, skipPreview and the
        # dry-run's NamespaceNotFound fallback). The update returns the live object; here its
        # server-populated fields (status, uid...) are left out.
        ident = kubernetes_id(checked)
    elif type_ == RANDOM_PASSWORD:
        values = plain(checked)
        outputs = {**_PASSWORD_DEFAULTS, **outputs}
        length = int(values.get("length") or 16)
        outputs["result"] = (token * 4)[:length]
        outputs["bcryptHash"] = f"$2a$10${token[:53]}"
        ident = "none"  # resource_password.go#Create
    elif type_ == IMAGE:
        name = plain(checked.get("imageName")) or ""
        outputs["repoDigest"] = f"{name.split(':')[0]}@sha256:{token}"
        ident = outputs["repoDigest"]
    else:
        ident = token
        if type_ == REMOTE_IMAGE:
            name = plain(checked.get("name")) or ""
            content = digest(name)  # the same image, the same id, whoever pulls it
            outputs["imageId"] = f"sha256:{content}"
            outputs["repoDigest"] = f"{name.split(':')[0]}@sha256:{content}"
            ident = f"sha256:{content}{name}"  # resource_docker_image_funcs.go: id + name
        elif type_ == VOLUME:
            ident = plain(checked.get("name")) or token
            outputs["mountpoint"] = f"/var/lib/docker/volumes/{ident}/_data"
    if preview:
        ident = ""
        unknown = list(_COMPUTED.get(type_, ()))
        unknown += [k for k in _OPTIONAL_COMPUTED.get(type_, ()) if k not in checked]
        if type_ == RANDOM_PASSWORD:
            unknown = ["result", "bcryptHash"]
        elif type_ == IMAGE:
            unknown = list(_IMAGE_OUTPUTS)
        for key in unknown:
            outputs[key] = UNKNOWN
    for key in additional_secrets:
        if key in outputs and not is_secret(outputs[key]):
            outputs[key] = secret(outputs[key])
    return ident, outputs


# --- reads (a resource's `get`) ----------------------------------------------------------------


class ReadError(Exception):
    """A read of an object the cluster does not hold: the engine fails the preview with it."""


Cluster = Mapping[tuple[str, str], Props]
"""What a cluster holds: (type token, provider id) -> the live object in the wire format."""


def read(
    type_: str, ident: str, cluster: Cluster | None, additional_secrets: tuple[str, ...]
) -> Props:
    """The outputs of a read step (a `get`): the live object.

    Read steps run in previews too; the Kubernetes provider answers a 404 with an empty state
    and the engine then fails with "resource '<id>' does not exist"
    (pulumi/pulumi@v3.259.0:pkg/resource/deploy/step.go#(*ReadStep).Apply;
    pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/provider/provider.go#(*kubeProvider).Read,
    deleteResponse), which `cluster` reproduces. With no cluster (the offline tool, which
    reaches none), the object is taken to exist and only what its id says is known: its
    apiVersion, kind, name and namespace; the caller reports that it must exist.
    """
    if cluster is not None:
        live = cluster.get((type_, ident))
        if live is None:
            raise ReadError(f"resource '{ident}' does not exist")
        outputs = copy.deepcopy(dict(live))
    elif type_.startswith("kubernetes:"):
        _, group_version, kind = type_.split(":")
        namespace, _, name = ident.rpartition("/")
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        outputs = {
            "apiVersion": group_version.removeprefix("core/"),
            "kind": kind,
            "metadata": metadata,
        }
    else:
        outputs = {}
    for key in additional_secrets:
        if key in outputs and not is_secret(outputs[key]):
            outputs[key] = secret(outputs[key])
    return outputs
