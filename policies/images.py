"""The image-tag-pinned policy: every container image names a fixed version or digest."""

from __future__ import annotations

from typing import Final

from _framework import Resource, resource_policy
from _values import Findings, join
from _workloads import DOCKER_CONTAINER, K8S_WORKLOADS, containers, label, pod_spec
from pulumi_policy import EnforcementLevel


def image_problem(image: str) -> str | None:
    """Why `image` is not pinned to one version, or None."""
    image = image.strip()
    if not image:
        return "is empty"
    if "@" in image:
        digest = image.split("@", 1)[1]
        return None if ":" in digest else f"{image!r} has a malformed digest"
    if image.startswith("sha256:"):
        return None  # a local image ID, e.g. docker.RemoteImage.image_id
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image!r} has no tag, so it means :latest"
    tag = last.rsplit(":", 1)[1]
    if tag.lower() == "latest":
        return f"{image!r} uses the moving tag latest"
    return None


_FIX: Final = "pin a version tag (e.g. nginx:1.27.3) or a digest (@sha256:...)"


def check_k8s_images(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    if pod is None:
        return
    for container in containers(pod, findings):
        path = join(container.path, "image")
        image = findings.field(container.spec, "image", container.path, str)
        if image is None:
            problem: str | None = "is not set"
        elif isinstance(image, str):
            problem = image_problem(image)
        else:
            continue
        if problem:
            findings.fail(
                f"{label(resource.type, resource.name)}: {container.title}: image ({path}) "
                f"{problem}; {_FIX}."
            )


def check_docker_image(resource: Resource, findings: Findings) -> None:
    image = findings.field(resource.props, "image", "", str)
    problem = "is not set" if image is None else None
    if isinstance(image, str):
        problem = image_problem(image)
    if problem:
        findings.fail(f"{label(resource.type, resource.name)}: image {problem}; {_FIX}.")


def check_image_tag_pinned(resource: Resource, findings: Findings) -> None:
    if resource.type == DOCKER_CONTAINER:
        check_docker_image(resource, findings)
    else:
        check_k8s_images(resource, findings)


POLICIES: Final = [
    resource_policy(
        name="image-tag-pinned",
        description="Container images must be pinned to a version tag or digest, never latest.",
        resource_types=K8S_WORKLOADS | {DOCKER_CONTAINER},
        check=check_image_tag_pinned,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
