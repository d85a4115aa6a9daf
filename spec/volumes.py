"""Volumes in the service description: scratch space, data that outlives the container, files
the component renders, and secrets managed outside the program; and where each is mounted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True, kw_only=True)
class Mount:
    """Where a volume of the workload appears in one container."""

    volume: str
    path: str
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class ScratchVolume:
    """Writable space that does not outlive the container (emptyDir / tmpfs)."""

    name: str
    size: str = "64Mi"


@dataclass(frozen=True, kw_only=True)
class DataVolume:
    """Storage that survives restarts and redeploys (PersistentVolumeClaim / named volume)."""

    name: str
    size: str


@dataclass(frozen=True, kw_only=True)
class FilesVolume:
    """Read-only files rendered by the component (ConfigMap or Secret / uploaded files)."""

    name: str
    files: Mapping[str, pulumi.Input[str]]
    secret: bool = False


@dataclass(frozen=True, kw_only=True)
class ExistingSecretVolume:
    """A Kubernetes Secret managed outside this program, e.g. a TLS certificate."""

    name: str
    secret_name: str


Volume = ScratchVolume | DataVolume | FilesVolume | ExistingSecretVolume
