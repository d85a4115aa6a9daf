"""The Platform protocol: what a back end offers the components that describe services."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import pulumi

from spec.service import ScheduledJob, ServiceSpec


@dataclass(frozen=True, kw_only=True)
class Deployed:
    """What consumers need to reach a deployed service."""

    host: str
    """DNS name of the service inside the platform's private network."""


class Platform(Protocol):
    """A back end: turns ServiceSpecs into the platform's resources, children of `parent`."""

    name: Literal["kubernetes", "docker"]

    def deploy(
        self,
        spec: ServiceSpec,
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> Deployed: ...

    def schedule(self, job: ScheduledJob, parent: pulumi.Resource) -> None: ...
