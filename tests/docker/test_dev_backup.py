"""Dev's backup, as docs/backup-restore.md gives it: the two commands of its "Dev (Docker)"
section, run as written (only the container's name is the test's own) against a real Docker
container made from the dev stack's rendered PostgreSQL inputs (user, read-only root, tmpfs,
data volume, environment). The official image cannot be pulled here; a stand-in with Debian's
PostgreSQL, the same user and the same first start runs instead
(tests/support/images/postgres-standin/).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.support.dockerd import (
    Created,
    carry,
    create_container,
    own_volumes,
    postgres_standin_image,
    python_base_image,
)
from tests.support.mocks import StackRun, unwrap
from tests.support.servers import REPO_ROOT

pytestmark = pytest.mark.docker

DEV_CONTAINER = "safeguard-dev-postgres"


def documented_commands() -> list[str]:
    """The shell commands of the Dev (Docker) section of docs/backup-restore.md."""
    text = (REPO_ROOT / "docs" / "backup-restore.md").read_text()
    section = text.split("## Dev (Docker)", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "docs/backup-restore.md: no command block under Dev (Docker)"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _psql(client: docker.DockerClient, container: str, sql: str) -> str:
    done = subprocess.run(
        ["docker", "exec", "-i", container, "psql", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
         "-U", "safeguard", "-d", "safeguard"],
        input=sql, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def dev_postgres(
    docker_client: docker.DockerClient, busybox: str, dev_stack: StackRun
) -> Iterator[Created]:
    """The dev stack's PostgreSQL container, on the stand-in image, running, its password file
    delivered by its carrier."""
    image = postgres_standin_image(docker_client, python_base_image(docker_client))
    rendered = {
        unwrap(r.inputs)["name"]: unwrap(r.inputs)
        for r in dev_stack.of_type("index/container:Container")
    }
    inputs, carrier = rendered[DEV_CONTAINER], rendered[f"{DEV_CONTAINER}-files"]
    run = uuid.uuid4().hex[:8]
    volumes = own_volumes(docker_client, run, carrier, inputs)
    carried = carry(
        docker_client, carrier, image=busybox, name=f"sgtest-{run}-postgres-files",
        volume_names=volumes,
    )  # fmt: skip
    made = create_container(
        docker_client, inputs, image=image, name=f"sgtest-{run}-postgres", volume_names=volumes
    )
    docker_client.api.start(made.id)
    deadline = time.monotonic() + 60
    while True:
        ready = subprocess.run(
            ["docker", "exec", made.name, "pg_isready", "-q"], capture_output=True, timeout=30
        )
        if ready.returncode == 0:
            break
        assert time.monotonic() < deadline, docker_client.api.logs(made.id).decode()[-2000:]
        time.sleep(0.5)
    try:
        yield made
    finally:
        docker_client.api.remove_container(made.id, force=True)
        docker_client.api.remove_container(carried.id, force=True)
        for volume in volumes.values():
            docker_client.api.remove_volume(volume, force=True)


def test_the_documented_dev_commands_take_and_restore_a_backup(
    docker_client: docker.DockerClient, dev_postgres: Created, tmp_path: Path
) -> None:
    take, restore = documented_commands()
    assert take.startswith(f"docker exec {DEV_CONTAINER} pg_dump ")
    assert restore.startswith(f"docker exec -i {DEV_CONTAINER} pg_restore ")
    name = dev_postgres.name
    rows = "".join(f"{i}\titem {i}\n" for i in range(1, 501))
    _psql(
        docker_client, name,
        "CREATE TABLE items (id int PRIMARY KEY, name text);\n"
        f"COPY items FROM stdin;\n{rows}\\.\n",
    )  # fmt: skip

    def run(command: str) -> None:
        done = subprocess.run(
            command.replace(DEV_CONTAINER, name), shell=True, cwd=tmp_path,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stderr}"

    run(take)
    dumps = list(tmp_path.iterdir())
    assert len(dumps) == 1 and dumps[0].read_bytes().startswith(b"PGDMP")
    _psql(docker_client, name, "DELETE FROM items WHERE id > 100; UPDATE items SET name = 'x';")
    run(restore)
    assert _psql(docker_client, name, "SELECT count(*), min(name) FROM items") == "500|item 1\n"
