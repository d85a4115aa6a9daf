# The restore check: the newest dump in $BACKUP_DIR restored into a throwaway PostgreSQL started
# here, in $SCRATCH_DIR, then every table's row count compared with the rows the dump holds, and
# the tables in $EXPECT_TABLES ("schema.table:minimum rows ...") required with at least their
# minimum. Any difference fails the run: a non-zero exit and a line starting "RESTORE CHECK
# FAILED". The postgres-restore-check CronJob runs this text as it is (components/backups.py sets
# the environment); docs/backup-restore.md explains it.
#
# Environment: PGDATABASE, BACKUP_DIR, SCRATCH_DIR, EXPECT_TABLES; metrics: PUSHGATEWAY_URL
# METRICS_JOB MAX_AGE_SECONDS.
set -eu

log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${METRICS_JOB:-restore-check}" "$*"
}

fail() {
    log "RESTORE CHECK FAILED: $*"
    exit 1
}

push() {
    [ -n "${PUSHGATEWAY_URL:-}" ] || return 0
    curl -fsS --max-time 20 --data-binary @- "$PUSHGATEWAY_URL/metrics/job/$METRICS_JOB" \
        || log "WARNING: the outcome could not be pushed to $PUSHGATEWAY_URL"
}

data="$SCRATCH_DIR/data"
socket="$SCRATCH_DIR/run"
work="$SCRATCH_DIR/work"

finish() {
    status=$?
    if [ -f "$data/postmaster.pid" ]; then
        pg_ctl stop -D "$data" -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$data" "$socket" "$work"
    if [ "$status" -ne 0 ]; then
        printf 'safeguard_job_succeeded 0\nsafeguard_job_max_age_seconds %s\n' \
            "${MAX_AGE_SECONDS:-0}" | push
    fi
}
trap finish EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

newest=$(ls -1 "$BACKUP_DIR" | grep -E "^$PGDATABASE-[0-9]{8}T[0-9]{6}Z\.dump\$" | sort | tail -n 1)
[ -n "$newest" ] || fail "no dump of $PGDATABASE in $BACKUP_DIR"
dump="$BACKUP_DIR/$newest"
log "checking $dump ($(wc -c <"$dump") bytes)"

rm -rf "$data" "$socket" "$work"
mkdir -p "$socket" "$work"
initdb -D "$data" -U postgres --auth=trust --no-sync >"$work/initdb.log" 2>&1 \
    || { cat "$work/initdb.log"; fail "initdb of the throwaway database failed"; }
# No TCP listener: the throwaway server is reached through its socket only. No durability: it
# is deleted at the end.
pg_ctl start -w -t 120 -D "$data" -l "$work/server.log" \
    -o "-c listen_addresses= -k $socket -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
    >/dev/null || { cat "$work/server.log"; fail "the throwaway PostgreSQL did not start"; }
export PGHOST="$socket" PGUSER=postgres

createdb "$PGDATABASE"
pg_restore --dbname "$PGDATABASE" --exit-on-error --single-transaction --no-owner --no-privileges \
    "$dump" 2>"$work/restore.log" \
    || { cat "$work/restore.log"; fail "pg_restore of $newest failed"; }

# The rows the dump holds, per table: the lines of each COPY block of its data (COPY text
# escapes newlines, so one line is one row). Streamed, not stored: should pg_restore stop early,
# the counts come out short and differ from the restored ones below.
pg_restore --data-only --file - "$dump" | awk '
    /^COPY / && / FROM stdin;$/ {
        table = substr($0, 6); sub(/ \(.*\) FROM stdin;$/, "", table); sub(/ FROM stdin;$/, "", table)
        rows = 0; copying = 1; next
    }
    copying && $0 == "\\." { print table, rows; copying = 0; next }
    copying { rows++ }
' | sort >"$work/dumped"

psql --no-psqlrc --quiet --tuples-only --no-align --field-separator ' ' --dbname "$PGDATABASE" \
    --set ON_ERROR_STOP=1 >"$work/restored.unsorted" <<'SQL'
SELECT format('%I.%I', n.nspname, c.relname),
       (xpath('/row/n/text()',
              query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname),
                           false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema');
SQL
sort "$work/restored.unsorted" >"$work/restored"

if ! cmp -s "$work/dumped" "$work/restored"; then
    diff "$work/dumped" "$work/restored" || true
    fail "the tables restored from $newest differ from the dump (< dumped, > restored)"
fi

tables=0
rows=0
while read -r table count; do
    tables=$((tables + 1))
    rows=$((rows + count))
done <"$work/restored"
[ "$tables" -gt 0 ] || fail "$newest holds no table"

for expected in $EXPECT_TABLES; do
    table=${expected%:*}
    minimum=${expected##*:}
    count=$(awk -v t="$table" '$1 == t { print $2 }' "$work/restored")
    [ -n "$count" ] || fail "table $table is missing from $newest"
    [ "$count" -ge "$minimum" ] \
        || fail "table $table holds $count rows in $newest, at least $minimum expected"
done

push <<METRICS
# TYPE safeguard_job_last_success_timestamp_seconds gauge
safeguard_job_last_success_timestamp_seconds $(date -u +%s)
# TYPE safeguard_job_succeeded gauge
safeguard_job_succeeded 1
# TYPE safeguard_job_max_age_seconds gauge
safeguard_job_max_age_seconds ${MAX_AGE_SECONDS:-0}
METRICS
log "restore check passed: $newest restored, $tables tables, $rows rows, as dumped"
