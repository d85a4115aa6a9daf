"""Volumes in the service description: scratch space, data that outlives the container, files
the component renders, secrets managed outside the program, a token for the Kubernetes API and
another job's data; and where each is mounted."""

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


@dataclass(frozen=True, kw_only=True)
class ApiTokenVolume:
    """The pod's ServiceAccount token for the Kubernetes API server, with the cluster's CA, as
    the files `token` and `ca.crt` (Kubernetes only). Mounted only where a container talks to
    the API server: no pod gets the token automounted into every container."""

    name: str
    expiration_seconds: int = 3600
    """The token's lifetime; the kubelet replaces it before it expires (at 80%)."""

    def __post_init__(self) -> None:
        # The API server refuses a projected token shorter than ten minutes.
        if self.expiration_seconds < 600:
            raise ValueError(
                f"volume {self.name!r}: expiration_seconds must be at least 600, "
                f"got {self.expiration_seconds}"
            )


@dataclass(frozen=True, kw_only=True)
class SharedVolume:
    """The data volume `volume` of the scheduled job `owner`, mounted by another workload too
    (the restore check reads the backup job's dumps). Kubernetes only: Docker has no jobs."""

    name: str
    owner: str
    volume: str


Volume = (
    ScratchVolume | DataVolume | FilesVolume | ExistingSecretVolume | ApiTokenVolume | SharedVolume
)
