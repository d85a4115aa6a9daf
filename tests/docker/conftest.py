"""The Docker daemon and the images of the Docker tests, made once per session.

Without a daemon every test here fails with the same one message saying how to start one;
none is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.support.dockerd import (
    DockerUnavailableError,
    build_app_image,
    busybox_image,
    connect,
    python_base_image,
    remove_leftovers,
)
from tests.support.mocks import StackRun, build_stack


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = connect()
    except DockerUnavailableError as exc:
        pytest.fail(f"the Docker tests need a Docker daemon: {exc}", pytrace=False)
    remove_leftovers(client)
    try:
        yield client
    finally:
        remove_leftovers(client)
        client.close()


@pytest.fixture(scope="session")
def busybox(docker_client: docker.DockerClient) -> str:
    return busybox_image(docker_client)


@pytest.fixture(scope="session")
def python_base(docker_client: docker.DockerClient) -> str:
    """PYTHON_IMAGE of the tests' builds: debootstrapped once, then reused while it exists."""
    return python_base_image(docker_client)


@pytest.fixture(scope="session")
def app_image(python_base: str) -> str:
    """The app's image from app/Dockerfile on the debootstrapped base."""
    return build_app_image(python_base)


@pytest.fixture(scope="session")
def dev_stack() -> StackRun:
    """The dev stack's program under mocks: the inputs `pulumi up` would send the provider."""
    return build_stack("dev")
