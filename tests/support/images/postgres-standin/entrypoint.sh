#!/bin/sh
# The first start of the official postgres image (docker-entrypoint.sh), reduced to what the dev
# stack relies on: initdb as POSTGRES_USER with POSTGRES_PASSWORD(_FILE), POSTGRES_DB created, local
# connections trusted, the socket in /var/run/postgresql. The setup's temporary server listens
# on a socket in /tmp only, so a client of /var/run/postgresql reaches the final server.
set -eu
# file_env of the official entrypoint: the password from the file POSTGRES_PASSWORD_FILE names
# (how the dev stack delivers it), never both.
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        echo "error: both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)" >&2
        exit 1
    fi
    POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pwfile
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pwfile --auth-local=trust \
        --auth-host=scram-sha-256 >/dev/null
    rm -f /tmp/pwfile
    pg_ctl -D "$PGDATA" -w start -o "-c listen_addresses= -k /tmp" >/dev/null
    [ "$POSTGRES_DB" = postgres ] || createdb -h /tmp -U "$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
fi
# No TCP listener: the tests' containers share the host's network.
exec postgres -D "$PGDATA" -c listen_addresses=
