#!/usr/bin/env bash
# make ha: a highly available Postgres on this machine, from Debian's packages: etcd (the
# consensus store), Patroni (one per Postgres member; it elects the leader and promotes a replica
# when the leader dies) and HAProxy, which routes to whichever member Patroni's REST API calls the
# primary. Tessera points at HAProxy: postgres://postgres@127.0.0.1:5440/tessera.
#
#   scripts/ha.sh start          etcd, HA_MEMBERS (3) Patroni members, HAProxy; waits for a leader
#                                and (HA_SYNC=on, the default) a synchronous standby
#   scripts/ha.sh stop           stops everything and removes HA_DIR
#   scripts/ha.sh leader         the leader's member name (pg1, pg2, ...)
#   scripts/ha.sh kill-leader    kill -9 of the leader's Patroni and Postgres: the machine dies
#   scripts/ha.sh status         patronictl list
#
# HA_SYNC=off runs the same cluster with asynchronous replication. HA_DIR (/tmp/tessera-ha) holds
# the data. Ports: HAProxy 5440, members 5441.., their REST APIs 8011.., etcd 23790/23800.
# Needs: apt-get install patroni etcd-server haproxy (and the postgresql package's binaries).
# Postgres refuses to run as root, so as root the members run as the `postgres` OS user.
set -euo pipefail

dir="${HA_DIR:-/tmp/tessera-ha}"
members="${HA_MEMBERS:-3}"
sync="${HA_SYNC:-on}"
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
etcd_client=23790
etcd_peer=23800
proxy_port=5440

as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

need() {
  local missing=()
  command -v patroni >/dev/null || missing+=(patroni)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v haproxy >/dev/null || missing+=(haproxy)
  [ -n "$bindir" ] || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ha.sh: missing ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
}

rest_port() { echo $((8010 + $1)); }
pg_port() { echo $((5440 + $1)); }

member_config() { # i
  local i=$1 sync_mode=false
  [ "$sync" = "on" ] && sync_mode=true
  cat <<EOF
scope: tessera
name: pg$i
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:$(rest_port "$i")
  connect_address: 127.0.0.1:$(rest_port "$i")
etcd3:
  host: 127.0.0.1:$etcd_client
bootstrap:
  dcs:
    # a dead leader's key expires after ttl seconds; then a replica takes over
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: $sync_mode
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 200
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_log_hints: "on"
  initdb:
    - encoding: UTF8
  pg_hba:
    - local all all trust
    - host replication all 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$(pg_port "$i")
  connect_address: 127.0.0.1:$(pg_port "$i")
  data_dir: $dir/pg$i/data
  bin_dir: $bindir
  pgpass: $dir/pg$i/pgpass
  authentication:
    replication:
      username: postgres
    superuser:
      username: postgres
  parameters:
    unix_socket_directories: $dir/pg$i
EOF
}

haproxy_config() {
  cat <<EOF
global
  maxconn 1000
defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s
listen primary
  bind 127.0.0.1:$proxy_port
  # only the member whose Patroni answers 200 on /primary gets connections; when it stops being
  # the primary, its connections are cut at once
  option httpchk
  http-check send meth GET uri /primary
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
EOF
  for i in $(seq 1 "$members"); do
    echo "  server pg$i 127.0.0.1:$(pg_port "$i") check port $(rest_port "$i")"
  done
}

# the first member whose Patroni answers 200 on `path` (/primary, /sync)
member_at() {
  for i in $(seq 1 "$members"); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(rest_port "$i")$1" 2>/dev/null)" = 200 ]; then
      echo "pg$i"
      return 0
    fi
  done
  return 1
}
leader() { member_at /primary; }
sync_standby() { member_at /sync; }

start_member() { # i
  local i=$1
  mkdir -p "$dir/pg$i"
  member_config "$i" > "$dir/pg$i/patroni.yml"
  if [ "$(id -u)" = "0" ]; then chown -R postgres "$dir/pg$i"; fi
  (as_pg patroni "$dir/pg$i/patroni.yml" >> "$dir/pg$i/patroni.log" 2>&1 &)
}

stop_all() {
  pkill -f "patroni $dir/" 2>/dev/null || true
  sleep 1
  for i in $(seq 1 "$members"); do
    [ -f "$dir/pg$i/data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$dir/pg$i/data" -m immediate stop >/dev/null 2>&1 || true
  done
  [ -f "$dir/haproxy.pid" ] && kill "$(cat "$dir/haproxy.pid")" 2>/dev/null || true
  [ -f "$dir/etcd.pid" ] && kill "$(cat "$dir/etcd.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$dir"
}

case "${1:-}" in
  start)
    need
    if [ -d "$dir" ]; then stop_all; fi
    mkdir -p "$dir"
    chmod 755 "$dir"
    (etcd --name ha --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
      --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
      --initial-cluster "ha=http://127.0.0.1:$etcd_peer" > "$dir/etcd.log" 2>&1 & echo $! > "$dir/etcd.pid")
    for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$etcd_client/health" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fs "http://127.0.0.1:$etcd_client/health" >/dev/null || { cat "$dir/etcd.log" >&2; exit 1; }
    start_member 1
    for _ in $(seq 1 120); do leader >/dev/null && break; sleep 0.5; done
    leader >/dev/null || { cat "$dir/pg1/patroni.log" >&2; exit 1; }
    for i in $(seq 2 "$members"); do start_member "$i"; done
    haproxy_config > "$dir/haproxy.cfg"
    haproxy -D -f "$dir/haproxy.cfg" -p "$dir/haproxy.pid"
    # every member streaming (and, synchronous, one of them the sync standby)
    for _ in $(seq 1 240); do
      running=$(curl -s "http://127.0.0.1:$(rest_port 1)/cluster" | grep -o '"state": *"\(running\|streaming\)"' | wc -l || true)
      if [ "$running" -ge "$members" ] && { [ "$sync" != "on" ] || sync_standby >/dev/null; }; then break; fi
      sleep 0.5
    done
    for _ in $(seq 1 40); do
      as_pg "$bindir/psql" -h 127.0.0.1 -p "$proxy_port" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && break
      sleep 0.25
    done
    echo "ha: leader $(leader), synchronous standby $( [ "$sync" = on ] && sync_standby || echo 'none (asynchronous)'); DATABASE_URL=postgres://postgres@127.0.0.1:$proxy_port/tessera" >&2
    ;;
  stop)
    stop_all
    ;;
  leader)
    leader
    ;;
  kill-leader)
    l=$(leader)
    i=${l#pg}
    pg=$(head -n 1 "$dir/pg$i/data/postmaster.pid")
    pkill -9 -f "patroni $dir/pg$i/" 2>/dev/null || true
    kill -9 "$pg" 2>/dev/null || true
    echo "$l"
    ;;
  status)
    patronictl -c "$dir/pg1/patroni.yml" list
    ;;
  *)
    echo "usage: $0 start|stop|leader|kill-leader|status" >&2
    exit 2
    ;;
esac
