"""The database's scheduled jobs, part of the Postgres component: a `pg_dump -Fc` kept for N days
on a volume of its own and, with off-site storage, encrypted with age and uploaded to
S3-compatible object storage (kept there for M days); and a restore check that restores the
newest dump into a throwaway PostgreSQL in its own pod and compares it with the dump. Both push
their outcome to the Pushgateway, where the BackupMissing and RestoreCheckMissing alerts read it.

The scripts are data files (components/files/postgres/); this module gives them their
environment. Restore: docs/backup-restore.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from components.common import FILES, TMP, TMP_MOUNT
from spec.images import is_pinned_image
from spec.offsite import (
    age_recipient_problem,
    bucket_problem,
    endpoint_problem,
    prefix_problem,
)
from spec.schedule import longest_gap, recurring_schedule_problem
from spec.service import Compute, Container, ScheduledJob
from spec.volumes import DataVolume, Mount, ScratchVolume, SharedVolume

SCRIPTS = FILES / "postgres"
UID = 999
"""The `postgres` user of the official image's Debian variant."""
BACKUPS = "/backups"
JOB_DEADLINE_SECONDS = 3600
"""How long one run may take, retries included; past it Kubernetes stops the Job."""
GRACE_SECONDS = 900
"""Added to a job's longest wait between runs before its outcome counts as missing: the push,
a scrape and a rule evaluation."""
DEFAULT_EXPECTED_TABLES: Mapping[str, int] = {"public.alembic_version": 1, "public.items": 0}
"""The app's tables (app/migrations) and the fewest rows a restored dump may hold in each: a
dump without the migrations' version row is no backup of the app."""

_TABLE = re.compile(r"^[a-z_][a-z0-9_$]*\.[a-z_][a-z0-9_$]*$")


@dataclass(frozen=True, kw_only=True)
class OffsiteCopy:
    """Where each dump goes, encrypted, besides the cluster: an S3-compatible bucket."""

    endpoint: str
    """The store's S3 API, https://host[:port] (AWS: https://s3.<region>.amazonaws.com)."""
    bucket: str
    region: str
    """The region the requests are signed for (most S3-compatible stores accept any)."""
    prefix: str
    """Key prefix of the dumps, empty or ending in '/' (e.g. "safeguard/production/")."""
    retention_days: int
    """Uploads older than this are deleted by the backup job after each verified upload."""
    recipients: tuple[str, ...]
    """age public keys (age1...): any one of their private keys decrypts a dump."""
    access_key_id: pulumi.Input[str] | None
    """The job's access key (secret); None: not set yet, and every run fails after its local
    dump, saying so, until it is."""
    secret_access_key: pulumi.Input[str] | None

    def __post_init__(self) -> None:
        problems = offsite_problems(self)
        if problems:
            raise ValueError("OffsiteCopy: " + "; ".join(problems))


def offsite_problems(copy: OffsiteCopy) -> list[str]:
    """What is wrong with the off-site settings, each problem naming its field."""
    found = [
        ("endpoint", endpoint_problem(copy.endpoint)),
        ("bucket", bucket_problem(copy.bucket)),
        ("region", None if copy.region.strip() else "is empty"),
        ("prefix", prefix_problem(copy.prefix)),
        (
            "retention_days",
            None if copy.retention_days >= 1 else f"must be at least 1, got {copy.retention_days}",
        ),
        ("recipients", None if copy.recipients else "needs at least one age public key"),
        *(("recipients", age_recipient_problem(r)) for r in copy.recipients),
    ]
    return [f"{name} {problem}" for name, problem in found if problem is not None]


@dataclass(frozen=True, kw_only=True)
class RestoreCheck:
    """When the newest dump is restored and checked, and what it must hold."""

    schedule: str = "30 4 * * *"
    """Cron schedule, UTC: after the backup's, so the dump checked is the night's."""
    expected_tables: Mapping[str, int] = field(default_factory=lambda: DEFAULT_EXPECTED_TABLES)
    """schema.table -> the fewest rows it may hold; every table must also hold exactly the rows
    the dump holds."""

    def __post_init__(self) -> None:
        _check_schedule("RestoreCheck", self.schedule)
        for table, minimum in self.expected_tables.items():
            if not _TABLE.match(table) or minimum < 0:
                raise ValueError(
                    f"RestoreCheck: expected table {table!r}: {minimum} must be "
                    "schema.table (lower-case) and a row count of at least 0"
                )


@dataclass(frozen=True, kw_only=True)
class BackupPolicy:
    """When to dump, for how long dumps are kept and how much room they get, where copies go
    and how they are checked."""

    schedule: str
    """Cron schedule, UTC."""
    retention_days: int
    storage_size: str
    image: str
    """The jobs' image (the stack's `images.backup`), built from
    components/files/backup-image/Dockerfile: PostgreSQL of the database's version (pg_dump and
    the server the restore check starts) with age, curl and the aws CLI."""
    offsite: OffsiteCopy | None = None
    """Encrypted copies in object storage; None: dumps stay on the cluster only."""
    restore_check: RestoreCheck | None = field(default_factory=RestoreCheck)
    """None: no restore check."""
    push_url: pulumi.Input[str] | None = None
    """The Pushgateway the jobs report to (http://host:port); None: they report nowhere."""

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise ValueError("BackupPolicy: retention_days must be at least 1")
        if not is_pinned_image(self.image):
            raise ValueError(f"BackupPolicy: image {self.image!r} must be pinned")
        _check_schedule("BackupPolicy", self.schedule)


def _check_schedule(owner: str, schedule: str) -> None:
    if problem := recurring_schedule_problem(schedule):
        raise ValueError(f"{owner}: schedule {problem}")


def max_age_seconds(schedule: str) -> int:
    """How old a job's last success may get before it counts as missing."""
    return int(longest_gap(schedule).total_seconds()) + JOB_DEADLINE_SECONDS + GRACE_SECONDS


def scheduled_job_names(name: str) -> tuple[str, str]:
    """The names of the jobs of the Postgres component `name`: backup and restore check."""
    return (f"{name}-backup", f"{name}-restore-check")


def script(name: str) -> str:
    """The text of one of the jobs' scripts, as the CronJob runs it."""
    return (SCRIPTS / name).read_text()


def backup_job(
    name: str,
    *,
    policy: BackupPolicy,
    host: str,
    port: int,
    database: str,
    user: str,
    password: pulumi.Input[str],
) -> ScheduledJob:
    """`<name>-backup`: dumps `database` from `host`:`port` onto its own volume, and off site."""
    job = scheduled_job_names(name)[0]
    env: dict[str, pulumi.Input[str]] = {
        "PGHOST": host,
        "PGPORT": str(port),
        "PGUSER": user,
        "PGDATABASE": database,
        "BACKUP_DIR": BACKUPS,
        "RETENTION_DAYS": str(policy.retention_days),
        **_metrics_env(job, policy.schedule, policy.push_url),
    }
    secrets: dict[str, pulumi.Input[str]] = {"PGPASSWORD": password}
    offsite = policy.offsite
    if offsite is not None:
        env |= {
            "S3_ENDPOINT": offsite.endpoint,
            "S3_BUCKET": offsite.bucket,
            "S3_PREFIX": offsite.prefix,
            "S3_RETENTION_DAYS": str(offsite.retention_days),
            "AWS_DEFAULT_REGION": offsite.region,
            "AGE_RECIPIENTS": " ".join(offsite.recipients),
            # The aws CLI reads its config under HOME, which the read-only image cannot hold.
            "HOME": "/tmp",
        }
        # An unset credential is an empty value, not a missing key: a missing key would keep
        # the pod from starting at all, local dump included; the script fails after that dump.
        secrets["AWS_ACCESS_KEY_ID"] = offsite.access_key_id or ""
        secrets["AWS_SECRET_ACCESS_KEY"] = offsite.secret_access_key or ""
    return ScheduledJob(
        name=job,
        schedule=policy.schedule,
        deadline_seconds=JOB_DEADLINE_SECONDS,
        secrets=secrets,
        container=Container(
            name="backup",
            image=policy.image,
            uid=UID,
            gid=UID,
            compute=Compute(
                cpu_request="50m", memory_request="128Mi", cpu_limit="1", memory_limit="512Mi"
            ),
            command=("sh", "-c", script("backup.sh")),
            env=env,
            secret_env={key: key for key in _secret_keys(offsite)},
            mounts=(Mount(volume="backups", path=BACKUPS), TMP_MOUNT),
        ),
        volumes=(DataVolume(name="backups", size=policy.storage_size), TMP),
    )


def restore_check_job(
    name: str, *, policy: BackupPolicy, check: RestoreCheck, database: str, scratch_size: str
) -> ScheduledJob:
    """`<name>-restore-check`: the newest dump of `<name>-backup` restored into a PostgreSQL of
    its own, on `scratch_size` of scratch space, and compared with the dump."""
    job = scheduled_job_names(name)[1]
    return ScheduledJob(
        name=job,
        schedule=check.schedule,
        deadline_seconds=JOB_DEADLINE_SECONDS,
        container=Container(
            name="restore-check",
            image=policy.image,
            uid=UID,
            gid=UID,
            compute=Compute(
                cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="1Gi"
            ),
            command=("sh", "-c", script("restore-check.sh")),
            env={
                "PGDATABASE": database,
                "BACKUP_DIR": BACKUPS,
                "SCRATCH_DIR": "/scratch",
                "EXPECT_TABLES": " ".join(
                    f"{table}:{rows}" for table, rows in sorted(check.expected_tables.items())
                ),
                **_metrics_env(job, check.schedule, policy.push_url),
            },
            mounts=(
                Mount(volume="backups", path=BACKUPS, read_only=True),
                Mount(volume="scratch", path="/scratch"),
                TMP_MOUNT,
            ),
        ),
        volumes=(
            SharedVolume(name="backups", owner=scheduled_job_names(name)[0], volume="backups"),
            ScratchVolume(name="scratch", size=scratch_size),
            TMP,
        ),
    )


def _secret_keys(offsite: OffsiteCopy | None) -> tuple[str, ...]:
    if offsite is None:
        return ("PGPASSWORD",)
    return ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _metrics_env(job: str, schedule: str, push_url: pulumi.Input[str] | None) -> dict:
    env: dict[str, pulumi.Input[str]] = {
        "METRICS_JOB": job,
        "MAX_AGE_SECONDS": str(max_age_seconds(schedule)),
    }
    if push_url is not None:
        env["PUSHGATEWAY_URL"] = push_url
    return env
