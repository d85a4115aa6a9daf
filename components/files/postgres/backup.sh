# One backup of $PGDATABASE: a pg_dump -Fc into $BACKUP_DIR that is complete or absent, then (with
# S3_BUCKET) an age-encrypted copy in S3-compatible object storage, then retention on both sides,
# then the outcome pushed to the Pushgateway. The postgres-backup CronJob runs this text as it is
# (components/backups.py sets the environment); docs/backup-restore.md explains it.
#
# Environment: PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD (libpq), BACKUP_DIR, RETENTION_DAYS;
# off-site: S3_ENDPOINT S3_BUCKET S3_PREFIX S3_RETENTION_DAYS AWS_DEFAULT_REGION
# AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AGE_RECIPIENTS; metrics: PUSHGATEWAY_URL METRICS_JOB
# MAX_AGE_SECONDS.
set -eu

log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${METRICS_JOB:-backup}" "$*"
}

push() {
    # The metrics on stdin, added to this job's group (POST keeps the group's other series).
    [ -n "${PUSHGATEWAY_URL:-}" ] || return 0
    curl -fsS --max-time 20 --data-binary @- "$PUSHGATEWAY_URL/metrics/job/$METRICS_JOB" \
        || log "WARNING: the outcome could not be pushed to $PUSHGATEWAY_URL"
}

older() {
    # Whether $1 is a stamp of this script older than stamp $2 (fixed width: text order is time
    # order). Anything else is no backup of ours and never pruned.
    case $1 in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) ;;
    *) return 1 ;;
    esac
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'
}

cutoff() {
    date -u -d "@$(($(date -u +%s) - $1 * 86400))" +%Y%m%dT%H%M%SZ
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
name="$PGDATABASE-$stamp.dump"
# Hidden, and not matching $PGDATABASE-*.dump: nothing takes a dump for finished before the
# rename below, and a run killed halfway leaves only a file the next run deletes.
partial="$BACKUP_DIR/.$name.partial"
sealed="$BACKUP_DIR/.$name.age.partial"
scratch=$(mktemp -d)

finish() {
    status=$?
    rm -f "$partial" "$sealed"
    rm -rf "$scratch"
    if [ "$status" -ne 0 ]; then
        if [ -f "$BACKUP_DIR/$name" ]; then
            log "BACKUP FAILED (exit $status): $name is on the volume, but the run did not finish"
        else
            log "BACKUP FAILED (exit $status): no new backup of $PGDATABASE"
        fi
        printf 'safeguard_job_succeeded 0\nsafeguard_job_max_age_seconds %s\n' \
            "${MAX_AGE_SECONDS:-0}" | push
    fi
}
trap finish EXIT
# A signal ends the script through `exit`, so the EXIT trap reports it too.
trap 'exit 143' TERM
trap 'exit 130' INT

rm -f "$BACKUP_DIR"/.*.partial

log "dumping $PGDATABASE from $PGHOST:$PGPORT"
pg_dump -Fc -Z 6 -f "$partial"
# On disk before the rename, and the rename on disk before anything counts on it.
sync "$partial"
mv "$partial" "$BACKUP_DIR/$name"
sync "$BACKUP_DIR"
size=$(wc -c <"$BACKUP_DIR/$name")
log "dumped $BACKUP_DIR/$name ($size bytes)"

if [ -n "${S3_BUCKET:-}" ]; then
    # The Secret holds both keys, empty while the stack sets none, so that the local dump above
    # is taken; the run still fails, since a dump without its copy is not the backup asked for.
    if [ -z "${AWS_ACCESS_KEY_ID:-}" ] || [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; then
        log "the object store's credentials are not set (safeguard:backupAccessKeyId and" \
            "safeguard:backupSecretAccessKey): $name was not uploaded"
        exit 1
    fi
    printf '%s\n' $AGE_RECIPIENTS >"$scratch/recipients"
    age --encrypt --recipients-file "$scratch/recipients" --output "$sealed" "$BACKUP_DIR/$name"
    key="$S3_PREFIX$name.age"
    aws --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors "$sealed" "s3://$S3_BUCKET/$key"
    stored=$(aws --endpoint-url "$S3_ENDPOINT" s3api head-object --bucket "$S3_BUCKET" \
        --key "$key" --query ContentLength --output text)
    sent=$(wc -c <"$sealed")
    if [ "$stored" != "$sent" ]; then
        log "s3://$S3_BUCKET/$key holds $stored bytes, $sent were sent"
        exit 1
    fi
    rm -f "$sealed"
    log "uploaded s3://$S3_BUCKET/$key ($sent bytes, encrypted)"

    # Retention by the stamp in the key, so it works on any S3-compatible store; only after a
    # verified upload, which is newer than the cutoff and so never pruned.
    remote_cutoff=$(cutoff "$S3_RETENTION_DAYS")
    aws --endpoint-url "$S3_ENDPOINT" s3 ls "s3://$S3_BUCKET/$S3_PREFIX" >"$scratch/listing"
    awk -v db="$PGDATABASE-" '$4 ~ /\.dump\.age$/ && index($4, db) == 1 { print $4 }' \
        "$scratch/listing" >"$scratch/keys"
    while read -r old; do
        old_stamp=${old#"$PGDATABASE-"}
        if older "${old_stamp%.dump.age}" "$remote_cutoff"; then
            aws --endpoint-url "$S3_ENDPOINT" s3 rm --only-show-errors "s3://$S3_BUCKET/$S3_PREFIX$old"
            log "pruned s3://$S3_BUCKET/$S3_PREFIX$old (older than $S3_RETENTION_DAYS days)"
        fi
    done <"$scratch/keys"
fi

local_cutoff=$(cutoff "$RETENTION_DAYS")
for old in "$BACKUP_DIR/$PGDATABASE"-*.dump; do
    [ -e "$old" ] || continue
    old_stamp=${old##*/"$PGDATABASE-"}
    if older "${old_stamp%.dump}" "$local_cutoff"; then
        rm -f "$old"
        log "pruned $old (older than $RETENTION_DAYS days)"
    fi
done

push <<METRICS
# TYPE safeguard_job_last_success_timestamp_seconds gauge
safeguard_job_last_success_timestamp_seconds $(date -u +%s)
# TYPE safeguard_job_succeeded gauge
safeguard_job_succeeded 1
# TYPE safeguard_job_max_age_seconds gauge
safeguard_job_max_age_seconds ${MAX_AGE_SECONDS:-0}
# TYPE safeguard_backup_size_bytes gauge
safeguard_backup_size_bytes $size
METRICS
ls -l "$BACKUP_DIR"
log "backup of $PGDATABASE done: $name"
