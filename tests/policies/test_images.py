"""policies/images.py: images pinned to a tag other than latest, or a digest."""

from __future__ import annotations

import pytest

from infra.offline.analyzer import PolicyPackProcess
from tests.support.diagnostics import only
from tests.support.policies import container, deployment, docker


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/safeguard/api:latest", "uses the moving tag latest"),
        ("ghcr.io/safeguard/api", "has no tag"),
        ("localhost:5000/api", "has no tag"),
    ],
)
def test_image_must_be_pinned(pack: PolicyPackProcess, image: str, expected: str) -> None:
    k8s_message = only(
        pack.analyze(deployment(container(image=image))), "image-tag-pinned", "advisory"
    )
    docker_message = only(pack.analyze(docker(image=image)), "image-tag-pinned", "advisory")

    assert expected in k8s_message and "spec.template.spec.containers[0].image" in k8s_message
    assert expected in docker_message


@pytest.mark.parametrize(
    "image",
    ["nginx:1.27.3", "localhost:5000/api:2.0", "nginx@sha256:" + "a" * 64, "sha256:" + "b" * 64],
)
def test_pinned_images_pass(pack: PolicyPackProcess, image: str) -> None:
    assert pack.analyze(docker(image=image)) == []
