"""A service's (or a scheduled job's) configuration as Kubernetes objects: its Secret of
credentials, a ConfigMap of plain env per container, and a ConfigMap (or Secret) per volume of
rendered files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from infra.platforms.kubernetes.target import Target
from spec.service import Container
from spec.volumes import FilesVolume, Volume


def secret(
    target: Target,
    prefix: str,
    service: str,
    values: Mapping[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> None:
    """The Secret `service`, which its containers' `secret_env` read from; its values stay
    secret outputs."""
    k8s.core.v1.Secret(
        f"{prefix}-secret",
        metadata=target.metadata(service, service),
        type="Opaque",
        string_data=pulumi.Output.secret(dict(values)),
        opts=opts,
    )


def env_config_maps(
    target: Target,
    prefix: str,
    service: str,
    containers: Sequence[Container],
    opts: pulumi.ResourceOptions,
) -> None:
    """`<service>-<container>-env` for each container with plain env."""
    for container in containers:
        if container.env:
            k8s.core.v1.ConfigMap(
                f"{prefix}-{container.name}-env",
                metadata=target.metadata(f"{service}-{container.name}-env", service),
                data=dict(container.env),
                opts=opts,
            )


def files(
    target: Target,
    prefix: str,
    service: str,
    volumes: Sequence[Volume],
    opts: pulumi.ResourceOptions,
) -> None:
    """`<prefix>-<volume>` for each files volume: a Secret when it is secret, else a ConfigMap."""
    for volume in volumes:
        if not isinstance(volume, FilesVolume):
            continue
        metadata = target.metadata(f"{prefix}-{volume.name}", service)
        if volume.secret:
            k8s.core.v1.Secret(
                f"{prefix}-{volume.name}",
                metadata=metadata,
                type="Opaque",
                string_data=pulumi.Output.secret(dict(volume.files)),
                opts=opts,
            )
        else:
            k8s.core.v1.ConfigMap(
                f"{prefix}-{volume.name}", metadata=metadata, data=dict(volume.files), opts=opts
            )
