"""The deploy workflow's release steps run for real, as far as this machine allows: its registry
login, its push of the built OCI archive with the digest check, and its rollback input, against
a real registry on loopback; then the image pulled by that digest on the Docker daemon is the
image that was built, and runs.

What cannot run here: docker/build-push-action (buildx and the GitHub Actions cache; Debian's
dockerd 20.10 has no OCI exporter, so the archive is made from the daemon's build of the same
Dockerfile with skopeo), and the SBOM and scan actions (syft and grype come neither from PyPI,
Debian nor npm; the workflow downloads them on the runner).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.support.registry import RegistryServer, skopeo
from tests.support.workflows import run_step, step

pytestmark = pytest.mark.timeout(600)

REPOSITORY = "Example/Safeguard-App"
"""As `github.repository` may spell it: the steps make it lowercase, as registries require."""
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def image_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def archive(
    app_image: str, image_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The app image as an OCI archive, the shape the workflow's build writes."""
    path = tmp_path_factory.mktemp("oci") / "app-image.tar"
    skopeo("copy", f"docker-daemon:{app_image}", f"oci-archive:{path}",
           env={**os.environ, **image_registry.skopeo_env(path.parent / "auth.json")})  # fmt: skip
    return path


def _archive_digest(path: Path) -> str:
    with tarfile.open(path) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    (manifest,) = index["manifests"]
    return manifest["digest"]


def _env(registry: RegistryServer, cwd: Path, **extra: str) -> dict[str, str]:
    """The step's environment; skopeo's logins in `cwd`, so each test logs in itself."""
    return {
        **registry.skopeo_env(cwd / "auth.json"),
        "IMAGE_REGISTRY": registry.host,
        "IMAGE_REPOSITORY": REPOSITORY,
        "GITHUB_SHA": COMMIT,
        **extra,
    }


def _login(registry: RegistryServer, cwd: Path, password: str | None = None) -> None:
    login = step("deploy.yml", "image", name="Registry login")
    done, _, _ = run_step(login, cwd, _env(
        registry, cwd, REGISTRY_USERNAME=registry.username,
        REGISTRY_PASSWORD=registry.password if password is None else password,
    ))  # fmt: skip
    assert done.returncode == 0 if password is None else done.returncode != 0, done.stderr


@pytest.fixture(scope="module")
def pushed(
    image_registry: RegistryServer, archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """The push step's `image` output and its summary, after the login step."""
    cwd = tmp_path_factory.mktemp("push")
    _login(image_registry, cwd)
    push = step("deploy.yml", "image", id="push")
    done, outputs, summary = run_step(push, cwd, _env(image_registry, cwd, ARCHIVE=str(archive)))
    assert done.returncode == 0, done.stdout + done.stderr
    return outputs["image"], summary


def test_the_push_step_publishes_the_archive_under_its_own_digest(
    image_registry: RegistryServer, archive: Path, pushed: tuple[str, str]
) -> None:
    image, summary = pushed
    digest = _archive_digest(archive)
    repository = f"{image_registry.host}/example/safeguard-app"
    auth = (image_registry.username, image_registry.password)
    accept = "application/vnd.oci.image.manifest.v1+json"
    path = f"https://{image_registry.host}/v2/example/safeguard-app/manifests"
    with httpx.Client(auth=auth, headers={"Accept": accept}, verify=image_registry.tls()) as client:
        by_digest = client.get(f"{path}/{digest}")
        by_tag = client.get(f"{path}/sha-{COMMIT}")

    assert image == f"{repository}@{digest}"
    assert by_digest.status_code == 200
    assert "sha256:" + hashlib.sha256(by_digest.content).hexdigest() == digest
    assert by_tag.headers["Docker-Content-Digest"] == digest
    assert f"`{image}`" in summary and f"sha-{COMMIT}" in summary


def test_the_digest_pulls_the_image_that_was_built_and_it_runs(
    docker_client: docker.DockerClient,
    image_registry: RegistryServer,
    app_image: str,
    pushed: tuple[str, str],
) -> None:
    image, _ = pushed
    auth = {"username": image_registry.username, "password": image_registry.password}
    repository, digest = image.split("@")
    docker_client.api.pull(repository, tag=digest, auth_config=auth)
    try:
        pulled = docker_client.api.inspect_image(image)
        output = docker_client.containers.run(
            image, entrypoint=["python", "-c", "import app.main; print('ok')"],
            network_mode="none", remove=True,
        )  # fmt: skip
    finally:
        docker_client.api.remove_image(image)

    built = docker_client.api.inspect_image(app_image)
    assert pulled["RootFS"]["Layers"] == built["RootFS"]["Layers"]
    assert pulled["Config"]["Entrypoint"] == ["python", "-m", "app"]
    assert output.decode().strip() == "ok"


def test_the_push_needs_the_login(
    image_registry: RegistryServer, archive: Path, tmp_path: Path
) -> None:
    _login(image_registry, tmp_path, password="wrong")
    push = step("deploy.yml", "image", id="push")
    done, outputs, _ = run_step(
        push, tmp_path, _env(image_registry, tmp_path, ARCHIVE=str(archive))
    )

    assert done.returncode != 0 and outputs == {}
    assert "authentication required" in done.stderr.lower() or "401" in done.stderr


def test_a_rollback_takes_only_a_digest_the_pipeline_pushed(
    image_registry: RegistryServer, pushed: tuple[str, str], tmp_path: Path
) -> None:
    image, _ = pushed
    rollback = step("deploy.yml", "image", id="rollback")
    _login(image_registry, tmp_path)

    def roll_back_to(target: str) -> tuple[int, dict[str, str], str]:
        env = _env(image_registry, tmp_path, ROLLBACK_IMAGE=target)
        done, outputs, _ = run_step(rollback, tmp_path, env)
        return done.returncode, outputs, done.stdout + done.stderr

    repository = image.split("@")[0]
    unknown = f"{repository}@sha256:{'0' * 64}"
    assert rollback["if"] == "env.ROLLBACK_IMAGE != ''"
    assert roll_back_to(image)[:2] == (0, {"image": image})
    for wrong in (f"{repository}:sha-{COMMIT}", image.replace("safeguard-app", "other-app")):
        status, outputs, said = roll_back_to(wrong)
        assert status != 0 and outputs == {}
        assert f"image must be {repository}@sha256:<digest>, got {wrong}" in said
    status, outputs, said = roll_back_to(unknown)
    assert status != 0 and outputs == {} and "manifest unknown" in said.lower()
