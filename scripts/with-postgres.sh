#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a Postgres server.
#
#   scripts/with-postgres.sh [--keep DIR] [--db NAME] -- COMMAND...
#
# With DATABASE_URL already set, runs COMMAND as is. Otherwise starts a private cluster with the
# `postgresql` package's initdb/pg_ctl on a free local port, runs COMMAND, and stops the cluster
# afterwards. --keep DIR keeps the cluster's files in DIR between runs (make run); without it the
# cluster lives in a temporary directory that is removed (make test). initdb refuses to run as
# root, so as root the cluster runs as the `postgres` OS user.
set -euo pipefail

keep=""
db="postgres"
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep="$2"; shift 2 ;;
    --db) db="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--keep DIR] [--db NAME] -- COMMAND..." >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--keep DIR] [--db NAME] -- COMMAND..." >&2; exit 2; }

if [ -n "${DATABASE_URL:-}" ]; then
  exec "$@"
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "No DATABASE_URL and no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)." >&2
  echo "Install them (apt-get install postgresql) or set DATABASE_URL=postgres://..." >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -n "$keep" ]; then
  mkdir -p "$keep"
  dir=$(cd "$keep" && pwd)
  temporary=0
else
  dir=$(mktemp -d /tmp/tessera-pg.XXXXXX)
  temporary=1
fi
if [ "$(id -u)" = "0" ]; then chown postgres "$dir"; chmod 700 "$dir"; fi

if [ ! -f "$dir/data/PG_VERSION" ]; then
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
fi

# A cluster of this directory that is already running (`make run` in another terminal) is
# shared, and left running afterwards.
if as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  port=$(sed -n 4p "$dir/data/postmaster.pid")
  echo "with-postgres: using the running cluster in $dir on 127.0.0.1:$port" >&2
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$db"
  exec "$@"
fi

cleanup() {
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  if [ "$temporary" = "1" ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# a free port: the first of a range that nobody answers on and that the server can bind (a port
# nobody answers on may still be held, by a socket in TIME-WAIT of a cluster just stopped)
port=""
for p in $(seq 55432 55632); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
  opts="-p $p -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=300"
  if [ "$temporary" = "1" ]; then
    # a throwaway cluster need not survive a crash: skip the disk flushes
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  if as_pg "$bindir/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/server.log" -w -t 60 start >/dev/null; then
    port=$p
    break
  fi
  grep -q "could not create any TCP/IP sockets" "$dir/server.log" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
done
[ -n "$port" ] || { echo "no free port in 55432-55632" >&2; exit 1; }
echo "with-postgres: PostgreSQL ($bindir) on 127.0.0.1:$port, files in $dir" >&2

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$db"
status=0
"$@" || status=$?
exit $status
