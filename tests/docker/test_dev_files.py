"""The dev stack's config files on a real Docker daemon, delivered as the Docker provider
delivers them.

For every service that ships files, its carrier and its container are created from the dev
stack's rendered inputs (user, read-only root, tmpfs, volumes, mounts, capabilities, security
options, limits, health check) on a busybox image; the carrier gets each upload as the
provider's tar extracted at `/`, and a stand-in process, run as the service's rendered user,
reads them back from the service's read-only mounts.
"""

from __future__ import annotations

import hashlib
import shlex
import uuid
from pathlib import PurePosixPath
from typing import Any

import docker
import pytest

from tests.support.dockerd import create_container, create_volume, deliver, diff
from tests.support.mocks import StackRun, unwrap

SERVICES = ("nginx", "prometheus", "alertmanager", "grafana")


def _rendered(stack: StackRun, kind: str) -> dict[str, dict[str, Any]]:
    return {unwrap(r.inputs)["name"]: unwrap(r.inputs) for r in stack.of_type(f"index/{kind}")}


def _own_volumes(client: docker.DockerClient, *inputs: dict[str, Any]) -> dict[str, str]:
    """A volume of the test's own for each rendered one the containers name."""
    run = uuid.uuid4().hex[:8]
    names = {m["source"] for i in inputs for m in i.get("mounts") or []}
    names |= {v["volumeName"] for i in inputs for v in i.get("volumes") or []}
    return {name: create_volume(client, f"sgtest-{run}-{name}") for name in names}


def _reader_script(files: list[str], targets: list[str], scratch: list[str]) -> str:
    """What the stand-in prints: its ids, every file under the files mounts, each expected
    file's digest, owner and mode, and every write that succeeded where none may."""
    q = shlex.join
    return "\n".join(
        [
            'echo "user $(id -u):$(id -g)"',
            f"for t in {q(targets)}; do find \"$t\" -type f; done | sort | sed 's/^/found /'",
            f"for f in {q(files)}; do",
            '  echo "file $f $(sha256sum "$f" | cut -d\' \' -f1) $(stat -c \'%u:%g %a\' "$f")"',
            '  (echo x >> "$f") 2>/dev/null && echo "wrote $f"',
            "done",
            f'for t in {q(targets)}; do touch "$t/new" 2>/dev/null && echo "wrote $t/new"; done',
            'touch /new 2>/dev/null && echo "wrote /new"',
            f'for t in {q(scratch)}; do touch "$t/new" && echo "scratch $t"; done',
            "exit 0",
        ]
    )


def _exec(client: docker.DockerClient, container_id: str, cmd: list[str]) -> tuple[int, str]:
    run = client.api.exec_create(container_id, cmd)
    output = client.api.exec_start(run["Id"]).decode(errors="replace")
    return client.api.exec_inspect(run["Id"])["ExitCode"], output


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_reads_exactly_the_files_its_carrier_received(
    docker_client: docker.DockerClient, busybox: str, dev_stack: StackRun, service: str
) -> None:
    containers = _rendered(dev_stack, "container:Container")
    carrier = containers[f"safeguard-dev-{service}-files"]
    main = containers[f"safeguard-dev-{service}"]
    volumes = _own_volumes(docker_client, carrier, main)

    name = f"sgtest-{service}-{uuid.uuid4().hex[:6]}"
    made = create_container(
        docker_client, carrier, image=busybox, name=f"{name}-files", volume_names=volumes
    )
    for upload in carrier["uploads"]:
        deliver(made.id, upload)  # the daemon refuses with an error, which fails the test
    assert carrier["start"] is False
    assert docker_client.api.inspect_container(made.id)["State"]["Status"] == "created"

    expected = {
        u["file"]: (hashlib.sha256(u["content"].encode()).hexdigest(), u["permissions"])
        for u in carrier["uploads"]
    }
    targets = [m["target"] for m in main["mounts"]]
    scratch = list(main.get("tmpfs") or {})
    # A stand-in that stays up (the rendered restart policy would rerun one that exits); the
    # checks run in it as `docker exec`, with the container's user.
    stand_in = create_container(
        docker_client, main, image=busybox, name=name, volume_names=volumes,
        entrypoint=["/bin/sleep"], command=["300"],
    )  # fmt: skip
    docker_client.api.start(stand_in.id)
    script = _reader_script(sorted(expected), targets, scratch)
    code, output = _exec(docker_client, stand_in.id, ["/bin/sh", "-c", script])
    out = output.splitlines()

    assert code == 0, out
    assert f"user {main['user']}" in out
    assert sorted(line.removeprefix("found ") for line in out if line.startswith("found ")) == (
        sorted(expected)
    ), "the volumes hold the uploads and nothing else (no copy of the image's files)"
    for path, (digest, permissions) in expected.items():
        # Root-owned, as every upload is; world-readable, so the service's user reads it.
        assert f"file {path} {digest} 0:0 {int(permissions, 8):o}" in out
    assert [line for line in out if line.startswith("wrote ")] == []
    assert sorted(line.removeprefix("scratch ") for line in out if line.startswith("scratch ")) == (
        sorted(scratch)
    )
    # Only the mount points the daemon makes in the container's layer, nothing written.
    points = {
        str(p)
        for t in [*targets, *scratch, *(v["containerPath"] for v in main.get("volumes") or [])]
        for p in [PurePosixPath(t), *PurePosixPath(t).parents]
        if str(p) != "/"
    }
    assert [c for c in diff(docker_client, stand_in.id) if c[2:] not in points] == []


def test_a_read_only_container_cannot_receive_uploads(
    docker_client: docker.DockerClient, busybox: str, dev_stack: StackRun
) -> None:
    """Why the carriers exist: the provider extracts uploads at `/`, and the daemon refuses any
    extraction into a read-only root, even of files that would land in a mounted volume."""
    containers = _rendered(dev_stack, "container:Container")
    carrier = containers["safeguard-dev-nginx-files"]
    main = containers["safeguard-dev-nginx"]
    writable = {**main, "mounts": [{**m, "readOnly": False} for m in main["mounts"]]}
    made = create_container(
        docker_client, writable, image=busybox, name=f"sgtest-nginx-ro-{uuid.uuid4().hex[:6]}",
        volume_names=_own_volumes(docker_client, main),
    )  # fmt: skip

    with pytest.raises(RuntimeError, match="container rootfs is marked read-only"):
        deliver(made.id, carrier["uploads"][0])
