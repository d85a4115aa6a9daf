"""Pieces the components share: where their data files live, the sizes of small containers,
volumes, generated passwords and the text of YAML config files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pulumi
import pulumi_random as random
import yaml

from spec.service import Compute
from spec.volumes import DataVolume, Mount, ScratchVolume, Volume

FILES = Path(__file__).parent / "files"
"""Monitoring assets, nginx template: data files loaded by path, never Python strings."""

EXPORTER_COMPUTE = Compute(
    cpu_request="10m", memory_request="32Mi", cpu_limit="100m", memory_limit="64Mi"
)
"""Prometheus exporters read a few counters; they need little and must not need more."""

NOBODY = 65534
"""The `nobody` user and group, which the Prometheus and Alertmanager images run as."""

TMP = ScratchVolume(name="tmp", size="64Mi")
TMP_MOUNT = Mount(volume="tmp", path="/tmp")
"""Most programs want a writable /tmp; with a read-only root it has to be a volume."""


def secret_password(name: str, parent: pulumi.Resource, length: int = 32) -> pulumi.Output[str]:
    """A generated password, only ever handed on as a secret output.

    Alphanumeric, so it can go into URLs and command lines unquoted.
    """
    password = random.RandomPassword(
        name, length=length, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )
    return pulumi.Output.secret(password.result)


def storage(name: str, size: str | None) -> Volume:
    """A data volume of `size`; None: 1Gi of scratch space that lives as long as the container."""
    return DataVolume(name=name, size=size) if size else ScratchVolume(name=name, size="1Gi")


def small_compute(cpu_limit: str, memory_limit: str) -> Compute:
    """Requests of a small server (50m, 64Mi) with the given limits."""
    return Compute(
        cpu_request="50m", memory_request="64Mi", cpu_limit=cpu_limit, memory_limit=memory_limit
    )


def yaml_text(data: Mapping) -> str:
    """A config file's text from its data: keys sorted, block style."""
    return yaml.safe_dump(dict(data), sort_keys=True, default_flow_style=False)
