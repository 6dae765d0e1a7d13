#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests, in the build directory: no
# manual step, nothing shared with a system cluster.
#
#   scripts/pg.sh start DIR   install Debian's PostgreSQL if missing, create
#                             the cluster in DIR (once), start it listening
#                             only on a Unix socket in DIR; print its URL
#   scripts/pg.sh stop DIR    stop it (fast shutdown), if running
#   scripts/pg.sh url DIR     the URL of the cluster in DIR
#
# As root, the cluster runs as the `postgres` user (initdb refuses root).
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop|url DIR}
dir=${2:?usage: pg.sh start|stop|url DIR}
port=${HONKER_PG_PORT:-54329}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data

url() {
    # The `postgres` crate and libpq both read a percent-encoded socket path.
    local host
    host=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$dir")
    echo "postgresql://postgres@$host:$port/postgres"
}

bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$found" ] && command -v pg_ctl >/dev/null; then
        found=$(dirname "$(command -v pg_ctl)")
    fi
    echo "$found"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    bin=$(bindir)
    if [ -z "$bin" ]; then
        echo "pg.sh: installing Debian's PostgreSQL" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bin=$(bindir)
    fi
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 --no-instructions >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$data" -l "$dir/log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_connections=200" \
            start >/dev/null
    fi
    url
    ;;
stop)
    bin=$(bindir)
    if [ -n "$bin" ] && [ -f "$data/PG_VERSION" ]; then
        as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
url)
    url
    ;;
*)
    echo "usage: pg.sh start|stop|url DIR" >&2
    exit 2
    ;;
esac
