"""Pieces every component shares: where its data files live and the sizes of small sidecars."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_random as random

from spec.service import Compute
from spec.volumes import Mount, ScratchVolume

FILES = Path(__file__).parent / "files"
"""Monitoring assets, nginx template: data files loaded by path, never Python strings."""

EXPORTER_COMPUTE = Compute(
    cpu_request="10m", memory_request="32Mi", cpu_limit="100m", memory_limit="64Mi"
)
"""Prometheus exporters read a few counters; they need little and must not need more."""

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
