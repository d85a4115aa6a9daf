"""The database's scheduled jobs run for real: the backup and restore-check scripts exactly as
the stacks render them (command and environment read from the CronJobs under mocks; only
addresses, directories and credential values moved to this machine), against the tests'
PostgreSQL, a real S3-compatible store (SeaweedFS) and a real Pushgateway and Prometheus.
Staging keeps its dumps on the cluster; production copies them off site, as its stack file says.

- A backup restores into a scratch database row for row; a dump killed halfway never looks like
  a finished backup.
- The restore check restores the newest dump into a PostgreSQL of its own and fails loudly.
- Off site: each dump is encrypted with the stack's age key and uploaded; it lists, downloads,
  decrypts and restores; retention prunes by the stamp in the key.
- The outcome reaches Prometheus through the Pushgateway, and the alerts read it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from components.prometheus import RULES_DIR
from tests.support.backups import (
    AppDatabase,
    PushgatewayServer,
    RenderedJob,
    SeaweedServer,
    adapted,
    offsite_run,
    owned_by_postgres,
    rendered_job,
    run_job,
)
from tests.support.deployed import deployed_files, stack_run
from tests.support.programs import AGE, AGE_KEYGEN, PG_RESTORE
from tests.support.servers import (
    REPO_ROOT,
    PostgresServer,
    PrometheusServer,
    eventually,
    free_port,
    new_temp_root,
)

pytestmark = pytest.mark.servers

STACK = "production"
LOCAL = "staging"
"""The stack whose dumps stay on the cluster (no postgres.offsite)."""
OFFSITE = yaml.safe_load((REPO_ROOT / "Pulumi.production.yaml").read_text())["config"][
    "safeguard:postgres"
]["offsite"]
BUCKET = OFFSITE["bucket"]
"""The production stack file's bucket and prefix: the test's store gets that bucket."""
PREFIX = OFFSITE["prefix"]
EXPORTERS = yaml.safe_load(
    (Path(__file__).parents[1] / "fixtures" / "exporter_metrics.yaml").read_text()
)["exporters"]


def _age_key(keygen: str, root: Path) -> tuple[Path, str]:
    """A fresh age identity file and its public key (age-keygen, Debian's age)."""
    identity = root / "identity.txt"
    subprocess.run([keygen, "-o", str(identity)], capture_output=True, check=True)
    public = subprocess.run(
        [keygen, "-y", str(identity)], capture_output=True, text=True, check=True
    )
    return identity, public.stdout.strip()


@pytest.fixture(scope="module")
def backup(backup_tools: str) -> RenderedJob:
    job = rendered_job(stack_run(LOCAL), "postgres-backup")
    assert "S3_BUCKET" not in job.env
    return job


@pytest.fixture(scope="module")
def restore_check(backup_tools: str) -> RenderedJob:
    return rendered_job(stack_run(LOCAL), "postgres-restore-check")


@pytest.fixture
def app_database(postgres_server: PostgresServer, backup: RenderedJob) -> Iterator[AppDatabase]:
    """The database the backup job names (PGDATABASE, PGUSER), with the app's schema."""
    database = AppDatabase(
        server=postgres_server, name=backup.env["PGDATABASE"], user=backup.env["PGUSER"]
    ).create()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def work() -> Iterator[Path]:
    root = new_temp_root("safeguard-backup-")
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _fill(database: AppDatabase, rows: int) -> None:
    """Rows of every shape the column types allow: NULLs, quotes, tabs, newlines, non-ASCII."""
    with psycopg.connect(database.dsn) as conn:
        conn.execute(
            "INSERT INTO items (name, description) "
            "SELECT 'item ' || g || E' \\t\"quoted\"\\n', "
            "CASE WHEN g %% 3 = 0 THEN NULL ELSE repeat('Ünïcode ✓ ', g %% 7) || md5(g::text) END "
            "FROM generate_series(1, %s) AS g",
            (rows,),
        )


def _backup_env(job: RenderedJob, database: AppDatabase, directory: Path, **more: str) -> dict:
    return adapted(
        job,
        **{
            "PGHOST": "127.0.0.1",
            "PGPORT": str(database.server.port),
            "PGPASSWORD": database.password,
            "BACKUP_DIR": str(directory),
        }
        | more,
    )


def _no_push(job: RenderedJob) -> dict[str, str]:
    # Nothing listens on this port: the job warns and goes on, as it does when the Pushgateway
    # is down.
    return (
        {"PUSHGATEWAY_URL": f"http://127.0.0.1:{free_port()}"}
        if "PUSHGATEWAY_URL" in job.env
        else {}
    )


def _dumps(directory: Path, database: str) -> list[str]:
    return sorted(p.name for p in directory.glob(f"{database}-*.dump"))


def _restore(database: AppDatabase, dump: Path, into: str) -> None:
    """The restore docs/backup-restore.md gives, into a scratch database."""
    database.server.create_database(into)
    restored = subprocess.run(
        [PG_RESTORE.path(), "--no-owner", "--single-transaction", "--exit-on-error",
         "-d", database.server.url(into), str(dump)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr


# --- 1. the backup ------------------------------------------------------------------------------


def test_the_rendered_backup_restores_row_for_row(
    backup: RenderedJob, app_database: AppDatabase, work: Path
) -> None:
    _fill(app_database, 2000)
    ran = run_job(backup, _backup_env(backup, app_database, work, **_no_push(backup)))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    dumps = _dumps(work, "safeguard")
    assert len(dumps) == 1, sorted(p.name for p in work.iterdir())
    assert not list(work.glob(".*")), "a finished run leaves no partial file"
    assert f"backup of safeguard done: {dumps[0]}" in ran.stdout

    scratch = "scratch_restore"
    try:
        _restore(app_database, work / dumps[0], scratch)
        original = app_database.rows()
        assert len(original["items"]) == 2000 and len(original["alembic_version"]) == 1
        assert app_database.rows(scratch) == original
    finally:
        app_database.server.drop_database(scratch)


def _children(pid: int) -> dict[int, str]:
    """pid -> command name of every process whose parent is `pid`."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        parent = int(text[text.rindex(")") + 2 :].split()[1])
        if parent == pid:
            found[int(stat.parent.name)] = name
    return found


def test_a_dump_killed_halfway_never_looks_like_a_finished_backup(
    backup: RenderedJob, restore_check: RenderedJob, app_database: AppDatabase, work: Path
) -> None:
    # Enough rows that pg_dump is caught writing: it is paused once its file has data, then the
    # whole job is killed as an evicted or OOM-killed pod is (SIGKILL: no trap runs).
    _fill(app_database, 300_000)
    env = _backup_env(backup, app_database, work, **_no_push(backup))
    job = subprocess.Popen(
        list(backup.command), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while time.monotonic() < deadline:
            dumping = [p for p, name in _children(job.pid).items() if name == "pg_dump"]
            partial = [p for p in work.glob(".*.partial") if p.stat().st_size > 0]
            if dumping and partial:
                os.kill(dumping[0], signal.SIGSTOP)
                break
            assert job.poll() is None, "the backup ended before pg_dump was caught writing"
            time.sleep(0.005)
        assert partial, "pg_dump never wrote its file"
        assert _dumps(work, "safeguard") == [], "a dump still being written looks finished"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    assert _dumps(work, "safeguard") == []

    # The restore check finds no dump to check, rather than the half-written one.
    scratch = owned_by_postgres(work / "scratch")
    checked = run_job(
        restore_check,
        adapted(
            restore_check, BACKUP_DIR=str(work), SCRATCH_DIR=str(scratch), **_no_push(restore_check)
        ),
        as_postgres=True,
    )
    assert checked.returncode == 1
    assert "RESTORE CHECK FAILED: no dump of safeguard" in checked.stdout

    # The next run clears what the killed one left and finishes.
    ran = run_job(backup, env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert len(_dumps(work, "safeguard")) == 1
    assert not list(work.glob(".*")), sorted(p.name for p in work.iterdir())


def test_a_failed_dump_leaves_no_backup_and_says_so(
    backup: RenderedJob, app_database: AppDatabase, work: Path, pushgateway: PushgatewayServer
) -> None:
    pushgateway.wipe()
    env = _backup_env(
        backup, app_database, work, PGPASSWORD="not-the-password", PUSHGATEWAY_URL=pushgateway.url
    )
    ran = run_job(backup, env)
    assert ran.returncode != 0
    assert "BACKUP FAILED" in ran.stdout and "password authentication failed" in ran.stderr
    assert list(work.iterdir()) == []
    group = pushgateway.groups()["postgres-backup"]
    assert group["safeguard_job_succeeded"] == 0
    assert "safeguard_job_last_success_timestamp_seconds" not in group


def test_local_retention_prunes_by_the_stamp_and_keeps_the_rest(
    backup: RenderedJob, app_database: AppDatabase, work: Path
) -> None:
    days = int(backup.env["RETENTION_DAYS"])
    old = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - (days + 1) * 86400))
    recent = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - (days - 1) * 86400))
    for name in (f"safeguard-{old}.dump", f"safeguard-{recent}.dump", "safeguard-manual.dump",
                 f"other-{old}.dump"):  # fmt: skip
        (work / name).write_bytes(b"kept unless pruned")
    ran = run_job(backup, _backup_env(backup, app_database, work, **_no_push(backup)))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    names = {p.name for p in work.iterdir()}
    assert f"safeguard-{old}.dump" not in names
    assert {f"safeguard-{recent}.dump", "safeguard-manual.dump", f"other-{old}.dump"} <= names
    assert len(_dumps(work, "safeguard")) == 3


# --- 2. the restore check -----------------------------------------------------------------------


def _check_env(job: RenderedJob, backups: Path, scratch: Path, **more: str) -> dict[str, str]:
    return adapted(job, BACKUP_DIR=str(backups), SCRATCH_DIR=str(scratch), **more)


def test_the_restore_check_restores_the_newest_dump_in_a_server_of_its_own(
    backup: RenderedJob,
    restore_check: RenderedJob,
    app_database: AppDatabase,
    work: Path,
    pushgateway: PushgatewayServer,
) -> None:
    assert restore_check.mounts["/backups"] is True, "the check reads the backups read-only"
    env = _backup_env(backup, app_database, work, **_no_push(backup))
    _fill(app_database, 10)
    assert run_job(backup, env).returncode == 0
    time.sleep(1.1)  # the next dump gets the next second's stamp
    _fill(app_database, 25)
    assert run_job(backup, env).returncode == 0
    newest = _dumps(work, "safeguard")[-1]

    pushgateway.wipe()
    scratch = owned_by_postgres(work / "scratch")
    checked = run_job(
        restore_check,
        _check_env(restore_check, work, scratch, PUSHGATEWAY_URL=pushgateway.url),
        as_postgres=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # 35 items and the migrations' version row, as in the newest dump.
    assert f"restore check passed: {newest} restored, 2 tables, 36 rows, as dumped" in (
        checked.stdout
    )
    assert list(scratch.iterdir()) == [], "the throwaway server is gone"
    group = pushgateway.groups()["postgres-restore-check"]
    assert group["safeguard_job_succeeded"] == 1
    assert abs(group["safeguard_job_last_success_timestamp_seconds"] - time.time()) < 120


def test_the_restore_check_fails_loudly_on_a_dump_missing_what_it_expects(
    backup: RenderedJob, restore_check: RenderedJob, app_database: AppDatabase, work: Path
) -> None:
    # The rendered expectations want the migrations' version row; a dump of a database that
    # lost it (or of the wrong database) restores fine and still fails the check.
    assert "public.alembic_version:1" in restore_check.env["EXPECT_TABLES"].split()
    with psycopg.connect(app_database.dsn) as conn:
        conn.execute("DELETE FROM alembic_version")
    assert (
        run_job(backup, _backup_env(backup, app_database, work, **_no_push(backup))).returncode == 0
    )
    scratch = owned_by_postgres(work / "scratch")
    checked = run_job(
        restore_check, _check_env(restore_check, work, scratch, **_no_push(restore_check)),
        as_postgres=True,
    )  # fmt: skip
    assert checked.returncode == 1
    assert "RESTORE CHECK FAILED: table public.alembic_version holds 0 rows" in checked.stdout


def test_the_restore_check_fails_loudly_on_a_damaged_dump(
    backup: RenderedJob, restore_check: RenderedJob, app_database: AppDatabase, work: Path
) -> None:
    _fill(app_database, 500)
    assert (
        run_job(backup, _backup_env(backup, app_database, work, **_no_push(backup))).returncode == 0
    )
    (dump,) = work.glob("safeguard-*.dump")
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])
    scratch = owned_by_postgres(work / "scratch")
    checked = run_job(
        restore_check, _check_env(restore_check, work, scratch, **_no_push(restore_check)),
        as_postgres=True,
    )  # fmt: skip
    assert checked.returncode == 1
    assert f"RESTORE CHECK FAILED: pg_restore of {dump.name} failed" in checked.stdout


# --- 3. off site ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offsite(backup_tools: str, age_keygen: str) -> Iterator[tuple[RenderedJob, Path]]:
    """The backup job rendered with an off-site copy for a fresh age key, and its identity."""
    root = new_temp_root("safeguard-age-")
    identity, public = _age_key(age_keygen, root)
    try:
        yield (
            rendered_job(offsite_run(public), "postgres-backup"),
            identity,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def empty_prefix(object_store: SeaweedServer) -> SeaweedServer:
    """The store with the stack's bucket and nothing under PREFIX."""
    object_store.empty(BUCKET, PREFIX)
    return object_store


def _offsite_env(
    job: RenderedJob, database: AppDatabase, directory: Path, store: SeaweedServer, **more: str
) -> dict[str, str]:
    store_env = {
        "S3_ENDPOINT": store.endpoint,
        "AWS_ACCESS_KEY_ID": store.access_key,
        "AWS_SECRET_ACCESS_KEY": store.secret_key,
        "HOME": str(directory),
    }
    return _backup_env(job, database, directory / "backups", **(store_env | _no_push(job) | more))


@pytest.mark.usefixtures("empty_prefix")
def test_each_dump_is_encrypted_uploaded_and_restores_from_the_store(
    offsite: tuple[RenderedJob, Path],
    app_database: AppDatabase,
    work: Path,
    object_store: SeaweedServer,
) -> None:
    job, identity = offsite
    assert job.env["S3_BUCKET"] == BUCKET and job.env["S3_PREFIX"] == PREFIX
    (work / "backups").mkdir()
    _fill(app_database, 1000)
    ran = run_job(job, _offsite_env(job, app_database, work, object_store))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (local,) = _dumps(work / "backups", "safeguard")

    # List, download, decrypt, restore: what docs/backup-restore.md tells an operator to do.
    assert object_store.keys(BUCKET, PREFIX) == [f"{PREFIX}{local}.age"]
    assert not list((work / "backups").glob(".*")), "the encrypted copy is not kept on the volume"
    fetched = work / "fetched.dump.age"
    got = object_store.aws("s3", "cp", f"s3://{BUCKET}/{PREFIX}{local}.age", str(fetched))
    assert got.returncode == 0, got.stderr
    sealed = fetched.read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert b"safeguard" not in sealed, "the object store holds plain text"
    opened = work / "opened.dump"
    decrypted = subprocess.run(
        [AGE.path(), "--decrypt", "--identity", str(identity), "--output", str(opened),
         str(fetched)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr
    assert opened.read_bytes() == (work / "backups" / local).read_bytes()
    scratch = "scratch_offsite"
    try:
        _restore(app_database, opened, scratch)
        assert app_database.rows(scratch) == app_database.rows()
    finally:
        app_database.server.drop_database(scratch)

    # Another key cannot open it.
    (work / "stranger").mkdir()
    stranger, _ = _age_key(AGE_KEYGEN.path(), work / "stranger")
    refused = subprocess.run(
        [AGE.path(), "--decrypt", "--identity", str(stranger), str(fetched)], capture_output=True
    )
    assert refused.returncode != 0


@pytest.mark.usefixtures("empty_prefix")
def test_offsite_retention_prunes_old_uploads_by_their_stamp(
    offsite: tuple[RenderedJob, Path],
    app_database: AppDatabase,
    work: Path,
    object_store: SeaweedServer,
) -> None:
    job, _ = offsite
    days = int(job.env["S3_RETENTION_DAYS"])
    assert days == OFFSITE["retentionDays"]
    stamp = lambda age_days: time.strftime(  # noqa: E731
        "%Y%m%dT%H%M%SZ", time.gmtime(time.time() - age_days * 86400)
    )
    old, recent = f"safeguard-{stamp(days + 1)}.dump.age", f"safeguard-{stamp(days - 1)}.dump.age"
    # Not of this job's making (no stamp), so never pruned.
    foreign = ["notes.txt", "safeguard-manual.dump.age"]
    blob = work / "blob"
    blob.write_bytes(b"an earlier upload")
    for name in (old, recent, *foreign):
        put = object_store.aws("s3", "cp", str(blob), f"s3://{BUCKET}/{PREFIX}{name}")
        assert put.returncode == 0, put.stderr
    (work / "backups").mkdir()
    ran = run_job(job, _offsite_env(job, app_database, work, object_store))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (local,) = _dumps(work / "backups", "safeguard")
    assert f"pruned s3://{BUCKET}/{PREFIX}{old}" in ran.stdout
    assert object_store.keys(BUCKET, PREFIX) == sorted(
        f"{PREFIX}{name}" for name in (recent, *foreign, f"{local}.age")
    )


@pytest.mark.usefixtures("empty_prefix")
def test_an_upload_the_store_refuses_fails_the_backup(
    offsite: tuple[RenderedJob, Path],
    app_database: AppDatabase,
    work: Path,
    object_store: SeaweedServer,
    pushgateway: PushgatewayServer,
) -> None:
    job, _ = offsite
    pushgateway.wipe()
    (work / "backups").mkdir()
    env = _offsite_env(
        job, app_database, work, object_store,
        AWS_SECRET_ACCESS_KEY="wrong", PUSHGATEWAY_URL=pushgateway.url,
    )  # fmt: skip
    ran = run_job(job, env)
    assert ran.returncode != 0
    assert "BACKUP FAILED" in ran.stdout
    assert object_store.keys(BUCKET, PREFIX) == []
    assert not list((work / "backups").glob(".*")), "no encrypted leftover on the volume"
    assert pushgateway.groups()["postgres-backup"]["safeguard_job_succeeded"] == 0


@pytest.mark.usefixtures("empty_prefix")
def test_without_its_credentials_the_backup_dumps_locally_and_fails_loudly(
    app_database: AppDatabase,
    work: Path,
    object_store: SeaweedServer,
    pushgateway: PushgatewayServer,
) -> None:
    # The committed production file, whose credentials are secrets nobody has set here.
    job = rendered_job(stack_run(STACK), "postgres-backup")
    assert job.env["S3_BUCKET"] == BUCKET
    assert job.secret_env["AWS_ACCESS_KEY_ID"] == job.secret_env["AWS_SECRET_ACCESS_KEY"] == ""
    pushgateway.wipe()
    (work / "backups").mkdir()
    env = _backup_env(
        job, app_database, work / "backups",
        S3_ENDPOINT=object_store.endpoint, HOME=str(work), PUSHGATEWAY_URL=pushgateway.url,
    )  # fmt: skip
    ran = run_job(job, env)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    (local,) = _dumps(work / "backups", "safeguard")
    assert (
        "the object store's credentials are not set (safeguard:backupAccessKeyId and "
        f"safeguard:backupSecretAccessKey): {local} was not uploaded"
    ) in ran.stdout
    assert "BACKUP FAILED" in ran.stdout
    assert object_store.keys(BUCKET, PREFIX) == []
    assert pushgateway.groups()["postgres-backup"]["safeguard_job_succeeded"] == 0


# --- 4. the outcome in Prometheus ---------------------------------------------------------------


@pytest.fixture
def prometheus(
    pushgateway: PushgatewayServer, prometheus_binary: str
) -> Iterator[PrometheusServer]:
    """Prometheus on the production stack's config and rules, the Pushgateway job pointed at the
    real Pushgateway (honor_labels as rendered), the other targets at nothing."""
    files = deployed_files(STACK)
    config = yaml.safe_load(files["/etc/prometheus/prometheus.yml"])
    # Debian's Prometheus has no Kubernetes service discovery (test_prometheus_config.py).
    config["scrape_configs"] = [j for j in config["scrape_configs"] if "static_configs" in j]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "pushgateway"]
    assert job["honor_labels"] is True
    job["static_configs"] = [{"targets": [f"127.0.0.1:{pushgateway.port}"]}]
    for other in config["scrape_configs"]:
        if other is not job:
            other["static_configs"] = [{"targets": [f"127.0.0.1:{free_port()}"]}]
    root = new_temp_root("safeguard-prom-")
    (root / "rules").mkdir()
    (root / "rules" / "backups.yaml").write_text(files[f"{RULES_DIR}/backups.yaml"])
    config["rule_files"] = [f"{root}/rules/*.yaml"]
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config.pop("alerting")
    server = PrometheusServer(root=root, config=yaml.safe_dump(config))
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _rule_expr(alert: str) -> str:
    text = deployed_files(STACK)[f"{RULES_DIR}/backups.yaml"]
    rules = {r["alert"]: r for g in yaml.safe_load(text)["groups"] for r in g["rules"]}
    return rules[alert]["expr"]


def test_the_jobs_outcome_reaches_prometheus_and_the_alerts_read_it(
    backup: RenderedJob,
    restore_check: RenderedJob,
    app_database: AppDatabase,
    work: Path,
    pushgateway: PushgatewayServer,
    prometheus: PrometheusServer,
) -> None:
    pushgateway.wipe()
    eventually(lambda: prometheus.query('up{job="pushgateway"} == 1'), what="pushgateway up")
    # Nothing recorded yet while the Pushgateway is up: both are missing.
    for alert, job in (("BackupMissing", backup.name), ("RestoreCheckMissing", restore_check.name)):
        found = eventually(lambda a=alert: prometheus.query(_rule_expr(a)), what=alert)
        assert [s["metric"].get("job") for s in found] == [job]

    _fill(app_database, 5)
    ran = run_job(backup, _backup_env(backup, app_database, work, PUSHGATEWAY_URL=pushgateway.url))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    scratch = owned_by_postgres(work / "scratch")
    checked = run_job(
        restore_check,
        _check_env(restore_check, work, scratch, PUSHGATEWAY_URL=pushgateway.url),
        as_postgres=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    for job in (backup, restore_check):
        series = eventually(
            lambda j=job: prometheus.query(
                f'safeguard_job_last_success_timestamp_seconds{{job="{j.name}"}}'
            ),
            what=f"{job.name}'s success in Prometheus",
        )
        # The job's own label, not the Pushgateway's: honor_labels as the stack renders it.
        assert series[0]["metric"]["job"] == job.name
        assert abs(float(series[0]["value"][1]) - time.time()) < 120
        allowed = prometheus.query(f'safeguard_job_max_age_seconds{{job="{job.name}"}}')
        assert allowed[0]["value"][1] == job.env["MAX_AGE_SECONDS"]
    for alert in ("BackupMissing", "RestoreCheckMissing"):
        assert prometheus.query(_rule_expr(alert)) == [], alert

    # Every name the metrics contract lists for the jobs is one they really push.
    for name in EXPORTERS["backup_jobs"]["metrics"]:
        assert prometheus.query(f'{name}{{job="{backup.name}"}}'), name
