"""The edge's certificate on Kubernetes: a cert-manager Certificate that issues it into the Secret
nginx mounts, or a lookup of a Secret that already holds it.

Either resource is what the edge's workload waits for: without the Secret its pods stay in
ContainerCreating (a Secret volume that does not exist) until the rollout times out.
"""

from __future__ import annotations

from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from spec.labels import labels

CERTIFICATE_API_VERSION = "cert-manager.io/v1"
WAIT_FOR = "pulumi.com/waitFor"
"""The provider's own await annotation: the Certificate counts as created once its condition
holds (pulumi-kubernetes 4.18.0 and newer)."""


def issued_certificate(
    *,
    namespace: pulumi.Input[str],
    instance: str,
    secret_name: str,
    host: str,
    issuer: str,
    issuer_kind: Literal["ClusterIssuer", "Issuer"],
) -> k8s.apiextensions.CustomResource:
    """A cert-manager Certificate for `host`, signed by `issuer`, stored in `secret_name`.

    The fields are cert-manager's `cert-manager.io/v1` Certificate
    (https://cert-manager.io/docs/usage/certificate/): `secretName` is required and the Secret
    lands in the Certificate's namespace with `tls.crt` and `tls.key`, the files nginx reads;
    `issuerRef.kind` defaults to Issuer there, so it is always written out.
    """
    # The Kubernetes provider has no await logic for custom resources: Creation looks the
    # object's apiVersion/kind up in its awaiters table, which holds only built-in kinds, and
    # metadata.ReadyCondition otherwise returns an immediate condition unless the object
    # carries pulumi.com/waitFor (or PULUMI_K8S_AWAIT_ALL=true is set)
    # (pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/await/await.go#Creation,
    # provider/pkg/metadata/overrides.go#ReadyCondition). Without the annotation the
    # Certificate would be "created" as soon as the API server accepted it and nginx would
    # start before the Secret exists. With `condition=Ready` the provider watches the
    # Certificate until cert-manager sets its Ready condition to True (condition/custom.go,
    # `kubectl wait --for=condition=Ready` semantics), within the create timeout (10 minutes
    # unless custom_timeouts say otherwise), and fails `pulumi up` naming the Certificate when
    # the issuer never signs.
    metadata: k8s.meta.v1.ObjectMetaArgsDict = {
        "name": secret_name,
        "namespace": namespace,
        "labels": labels("nginx", instance, "certificate"),
        "annotations": {WAIT_FOR: "condition=Ready"},
    }
    return k8s.apiextensions.CustomResource(
        "nginx-certificate",
        api_version=CERTIFICATE_API_VERSION,
        kind="Certificate",
        metadata=metadata,
        spec={
            "secretName": secret_name,
            "dnsNames": [host],
            "issuerRef": {"name": issuer, "kind": issuer_kind, "group": "cert-manager.io"},
        },
    )


def existing_secret(namespace: str, name: str) -> k8s.core.v1.Secret:
    """The Secret `name` in `namespace`, read from the cluster (a `get`, never created).

    Read steps run during previews too, and the provider's Read answers a missing object
    (a 404) with an empty state, which the engine turns into "resource '<namespace>/<name>'
    does not exist": `pulumi preview` fails at once instead of `pulumi up` waiting for pods
    that cannot mount it (pulumi/pulumi@v3.259.0:pkg/resource/deploy/step.go
    #(*ReadStep).Apply; pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/provider/provider.go
    #(*kubeProvider).Read, deleteResponse). The id is plain text, known in a preview: an
    unknown id would skip the read.
    """
    return k8s.core.v1.Secret.get("nginx-tls", id=f"{namespace}/{name}")
