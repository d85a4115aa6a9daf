"""The backup jobs' image, built from components/files/backup-image/Dockerfile as RELEASING.md
builds it, runs the production stack's rendered backup and restore-check jobs as their pods would
on a real Docker daemon: the rendered command, environment (only addresses and credential values
moved to 127.0.0.1's servers) and mount paths, as the rendered user with its fsGroup, a read-only
root, no capabilities and no privilege escalation; against the tests' PostgreSQL, a real S3 store
(SeaweedFS) and a real Pushgateway. postgres:16.4-bookworm cannot be pulled here: the image is
built on a stand-in with Debian's PostgreSQL and the same postgres user (999).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import docker
import psycopg
import pytest

from tests.support.backups import (
    AppDatabase,
    PushgatewayServer,
    RenderedJob,
    SeaweedServer,
    offsite_run,
    rendered_env,
    rendered_job,
)
from tests.support.deployed import stack_run
from tests.support.dockerd import (
    TEST_LABEL,
    build_backup_image,
    postgres_standin_image,
    python_base_image,
)
from tests.support.mocks import unwrap
from tests.support.servers import PostgresServer

pytestmark = pytest.mark.docker

STACK = "production"


@pytest.fixture(scope="module")
def backup_image(docker_client: docker.DockerClient) -> str:
    base = postgres_standin_image(docker_client, python_base_image(docker_client), uid=999)
    return build_backup_image(base)


def _pod(job: RenderedJob) -> dict:
    """The job's rendered pod spec."""
    (cron,) = [
        unwrap(r.inputs)
        for r in stack_run(STACK).of_type("batch/v1:CronJob")
        if r.inputs["metadata"]["name"] == job.name
    ]
    return cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _run_as_its_pod(
    client: docker.DockerClient,
    image: str,
    job: RenderedJob,
    env: dict[str, str],
    volumes: dict[str, Path],
) -> tuple[int, str]:
    """The job's container as Kubernetes would start it from the rendered pod: `volumes` maps
    each rendered mount path but /tmp (an emptyDir: a tmpfs here) to a host directory, which
    Kubernetes makes writable for the pod's fsGroup."""
    pod = _pod(job)
    (container,) = pod["containers"]
    security, pod_security = container["securityContext"], pod["securityContext"]
    # Numbers come back from the engine's wire format as floats.
    uid, gid, fs_group = (int(pod_security[key]) for key in ("runAsUser", "runAsGroup", "fsGroup"))
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod_security["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]}
    assert set(mounts) == {*volumes, "/tmp"}, mounts
    for path in volumes.values():
        os.chown(path, 0, fs_group)
        path.chmod(0o2770)
    made = client.containers.create(
        image,
        # A container's command replaces the image's entrypoint, as in Kubernetes.
        entrypoint=container["command"],
        command=container.get("args"),
        user=f"{uid}:{gid}",
        group_add=[str(fs_group)],
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        tmpfs={"/tmp": "rw,nosuid,nodev"},
        volumes={
            str(host): {"bind": path, "mode": "ro" if mounts[path] else "rw"}
            for path, host in volumes.items()
        },
        environment=env,
        network_mode="host",
        labels={TEST_LABEL: "backup-image"},
        name=f"sgtest-{uuid.uuid4().hex[:8]}-{job.name}",
    )
    try:
        made.start()
        status = made.wait(timeout=300)["StatusCode"]
        return status, made.logs().decode(errors="replace")
    finally:
        made.remove(force=True)


def test_the_image_runs_the_rendered_jobs_as_their_pods_do(
    docker_client: docker.DockerClient,
    backup_image: str,
    postgres_server: PostgresServer,
    object_store: SeaweedServer,
    pushgateway: PushgatewayServer,
    age_keygen: str,
    tmp_path: Path,
) -> None:
    keygen = age_keygen
    subprocess.run([keygen, "-o", str(tmp_path / "key")], check=True, capture_output=True)
    public = subprocess.run(
        [keygen, "-y", str(tmp_path / "key")], check=True, capture_output=True, text=True
    ).stdout.strip()
    backup = rendered_job(offsite_run(public), "postgres-backup")
    check = rendered_job(stack_run(STACK), "postgres-restore-check")
    bucket, prefix = backup.env["S3_BUCKET"], backup.env["S3_PREFIX"]
    object_store.empty(bucket, prefix)
    pushgateway.wipe()
    database = AppDatabase(
        server=postgres_server, name=backup.env["PGDATABASE"], user=backup.env["PGUSER"]
    ).create()
    try:
        with psycopg.connect(database.dsn) as conn:
            conn.execute(
                "INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 50) g"
            )
        backups, scratch = tmp_path / "backups", tmp_path / "scratch"
        backups.mkdir()
        scratch.mkdir()

        status, logs = _run_as_its_pod(
            docker_client, backup_image, backup,
            rendered_env(
                backup, PGHOST="127.0.0.1", PGPORT=str(postgres_server.port),
                PGPASSWORD=database.password, S3_ENDPOINT=object_store.endpoint,
                AWS_ACCESS_KEY_ID=object_store.access_key,
                AWS_SECRET_ACCESS_KEY=object_store.secret_key, PUSHGATEWAY_URL=pushgateway.url,
            ),
            {"/backups": backups},
        )  # fmt: skip
        assert status == 0, logs
        (dump,) = backups.glob("safeguard-*.dump")
        assert dump.stat().st_uid == 999, "written by the image's postgres user"
        assert object_store.keys(bucket, prefix) == [f"{prefix}{dump.name}.age"]

        status, logs = _run_as_its_pod(
            docker_client, backup_image, check,
            rendered_env(check, PUSHGATEWAY_URL=pushgateway.url),
            {"/backups": backups, "/scratch": scratch},
        )  # fmt: skip
        assert status == 0, logs
        # 50 items and the migrations' version row.
        assert f"restore check passed: {dump.name} restored, 2 tables, 51 rows, as dumped" in logs
        groups = pushgateway.groups()
        for job in (backup, check):
            assert groups[job.name]["safeguard_job_succeeded"] == 1, job.name
    finally:
        database.drop()
