"""Where a stack's Kubernetes objects go: its namespace, and the instance (the stack) that goes
into every label set and selector, so that two stacks never select each other's pods."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.meta.v1 import ObjectMetaArgsDict

from spec.labels import labels, selector


@dataclass(frozen=True, kw_only=True)
class Target:
    """The namespace and instance every builder of the back end writes into."""

    namespace: pulumi.Input[str]
    """The stack's namespace."""
    instance: str
    """The stack, as the `app.kubernetes.io/instance` label."""
    image_pull_secrets: tuple[str, ...] = ()
    """Secrets (kubernetes.io/dockerconfigjson) in the namespace every pod pulls with."""

    def metadata(self, name: str, service: str) -> ObjectMetaArgsDict:
        """An object of `service` named `name`, in the namespace, with the service's labels."""
        return {"name": name, "namespace": self.namespace, "labels": self.labels(service)}

    def labels(self, service: str) -> dict[str, str]:
        """The labels of `service`'s objects and pods."""
        return labels(service, self.instance)

    def selector(self, service: str) -> dict[str, str]:
        """The labels that select `service`'s pods."""
        return selector(service, self.instance)
