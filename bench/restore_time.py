"""Restore time: how long the production stack's backup job takes to dump a database of N MB,
and how long getting it back takes, from the local dump and from the object store (download,
decrypt, restore): the figures behind the recovery point and recovery time objectives in
docs/backup-restore.md.

    python -m bench.restore_time [--sizes 64,256] [--json out.json]

Each size is a fresh `safeguard` database on a PostgreSQL of its own (Debian's, as in the tests)
with the app's schema and N MB of `items` (pg_database_size). The backup is the rendered job's
script, run as tests/components/test_backups.py runs it, with an off-site copy to a SeaweedFS on
127.0.0.1; the restores are the commands docs/backup-restore.md gives.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench._common import BenchError, argument_parser, print_machine, write_json
from tests.support.backups import (
    AppDatabase,
    SeaweedServer,
    adapted,
    offsite_run,
    rendered_job,
    run_job,
)
from tests.support.programs import AGE, AGE_KEYGEN, PG_RESTORE
from tests.support.servers import PostgresServer, free_port, new_temp_root


def _fill(database: AppDatabase, megabytes: int) -> int:
    """Rows of about 1 kB in `items` until the database holds `megabytes`; its size in bytes."""
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        while True:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            if size >= megabytes * 1024 * 1024:
                return size
            conn.execute(
                "INSERT INTO items (name, description) SELECT 'item ' || g, "
                "(SELECT string_agg(md5(random()::text || g || n), '') "
                "FROM generate_series(1, 30) AS n) "
                "FROM generate_series(1, 20000) AS g"
            )


def _run(cmd: list[str], **kwargs: Any) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, **kwargs)
    if result.returncode != 0:
        raise BenchError(f"{cmd[0]} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.perf_counter() - start


def measure(megabytes: int, root: Path) -> dict[str, Any]:
    server = PostgresServer(root=root / "pg")
    server.init()
    server.start()
    store = SeaweedServer(root=root / "s3").start()
    try:
        identity = root / "identity.txt"
        _run([AGE_KEYGEN.path(), "-o", str(identity)])
        public = subprocess.run(
            [AGE_KEYGEN.path(), "-y", str(identity)], capture_output=True, text=True, check=True
        ).stdout.strip()
        job = rendered_job(offsite_run(public), "postgres-backup")
        bucket, prefix = job.env["S3_BUCKET"], job.env["S3_PREFIX"]
        if store.aws("s3", "mb", f"s3://{bucket}").returncode != 0:
            raise BenchError("could not make the bucket")
        database = AppDatabase(
            server=server, name=job.env["PGDATABASE"], user=job.env["PGUSER"]
        ).create()
        size = _fill(database, megabytes)
        backups = root / "backups"
        backups.mkdir()
        env = adapted(
            job,
            PGHOST="127.0.0.1",
            PGPORT=str(server.port),
            PGPASSWORD=database.password,
            BACKUP_DIR=str(backups),
            S3_ENDPOINT=store.endpoint,
            AWS_ACCESS_KEY_ID=store.access_key,
            AWS_SECRET_ACCESS_KEY=store.secret_key,
            HOME=str(root),
            PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port()}",
        )
        start = time.perf_counter()
        ran = run_job(job, env, timeout=3600)
        backup_s = time.perf_counter() - start
        if ran.returncode != 0:
            raise BenchError(f"the backup failed:\n{ran.stdout}{ran.stderr}")
        (dump,) = backups.glob("safeguard-*.dump")
        pg_restore = PG_RESTORE.path()
        restore = [pg_restore, "--no-owner", "--single-transaction", "--exit-on-error"]

        server.create_database("restored_local")
        local_s = _run([*restore, "-d", server.url("restored_local"), str(dump)])

        fetched, opened = root / "fetched.age", root / "opened.dump"
        start = time.perf_counter()
        key = f"s3://{bucket}/{prefix}{dump.name}.age"
        if store.aws("s3", "cp", "--only-show-errors", key, str(fetched)).returncode != 0:
            raise BenchError("the download failed")
        download_s = time.perf_counter() - start
        decrypt_s = _run([AGE.path(), "-d", "-i", str(identity), "-o", str(opened), str(fetched)])
        server.create_database("restored_offsite")
        offsite_restore_s = _run([*restore, "-d", server.url("restored_offsite"), str(opened)])
        return {
            "database_mb": round(size / 1024 / 1024, 1),
            "dump_mb": round(dump.stat().st_size / 1024 / 1024, 1),
            "backup_s": round(backup_s, 1),
            "restore_local_s": round(local_s, 1),
            "download_s": round(download_s, 1),
            "decrypt_s": round(decrypt_s, 1),
            "restore_offsite_s": round(offsite_restore_s, 1),
            "offsite_total_s": round(download_s + decrypt_s + offsite_restore_s, 1),
        }
    finally:
        store.stop()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("bench.restore_time", __doc__)
    parser.add_argument("--sizes", default="64,256", help="database sizes in MB, comma-separated")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    info = print_machine()
    results = []
    for megabytes in (int(s) for s in args.sizes.split(",")):
        root = new_temp_root("safeguard-bench-restore-")
        # The postgres user reaches its cluster's directory through this one.
        root.chmod(0o755)
        try:
            result = measure(megabytes, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        results.append(result)
        print(
            f"{result['database_mb']:>8} MB database, {result['dump_mb']} MB dump: backup "
            f"{result['backup_s']} s; restore from the volume {result['restore_local_s']} s; "
            f"from the store {result['offsite_total_s']} s (download {result['download_s']}, "
            f"decrypt {result['decrypt_s']}, restore {result['restore_offsite_s']})"
        )
    write_json(args.json, {"machine": info, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
