#!/usr/bin/env bash
# make bench-scale-out: two Tessera instances on one Postgres, against one.
#
# Starts instance A, then instance B on the same database and master key, checks that they are one
# service (a pair issued by A refreshes at B; a session revoked at B is refused by A at once), then
# drives the same total load (BENCH_CONNECTIONS, 8) at A alone and split over A and B, for rotated
# refreshes (database-bound) and GET /v1/me (CPU-bound), beside the database ceiling of the same
# run (tessera-bench db). Writes docs/benchmarks/scale-out.md (BENCH_OUT); docs/benchmarks/README.md
# says what the figures mean.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds="${BENCH_SECONDS:-10}"
conns="${BENCH_CONNECTIONS:-8}"
out="${BENCH_OUT:-$root/docs/benchmarks}"
command -v wrk >/dev/null || { echo "scale-out.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }
if [ -z "${DATABASE_URL:-}" ]; then
  exec "$root/scripts/with-postgres.sh" -- "$0" "$@"
fi
if [ -z "${TESSERA_BIN:-}" ]; then
  (cd "$root" && cargo build --release --quiet -p tessera-cli -p tessera-bench --bins)
  TESSERA_BIN="$root/target/release/tessera"
fi
TESSERA_BENCH_BIN="${TESSERA_BENCH_BIN:-$(dirname "$TESSERA_BIN")/tessera-bench}"
python=$("$root/scripts/test-venv.sh")
work=$(mktemp -d /tmp/tessera-scale.XXXXXX)
# the servers' pids, in a file: start() runs in a command substitution's subshell
cleanup() {
  if [ -f "$work/pids" ]; then xargs -r kill < "$work/pids" 2>/dev/null || true; fi
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

url=$("$python" -c 'import sys, uuid; base, _, q = sys.argv[1].partition("?"); base = base.rsplit("/", 1)[0]; print(f"{base}/tessera_scale_{uuid.uuid4().hex[:8]}" + (f"?{q}" if q else ""))' "$DATABASE_URL")
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_get() { "$python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

start() { # name -> prints its base URL
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  (cd "$work/$name" && TESSERA__DATABASE__URL="$url" TESSERA__SERVER__PORT="$port" TESSERA__METRICS__PORT=0 TESSERA__SECRETS__MASTER_KEY_FILE="$work/master.key" \
    TESSERA__LOG__LEVEL=error TESSERA__PASSWORD__ATTEMPTS_PER_ADDRESS_PER_MINUTE=0 TESSERA__PASSWORD__LOCKOUT__THRESHOLD=0 \
    TESSERA__PASSWORD__LOCKOUT__ACCOUNT_THRESHOLD=0 exec "$TESSERA_BIN" serve >"$work/$name/server.log" 2>&1) &
  echo $! >> "$work/pids"
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/health/live" >/dev/null || { cat "$work/$name/server.log" >&2; exit 1; }
  echo "http://127.0.0.1:$port"
}

a=$(start a)
b=$(start b)
pw="correct horse battery"
login="grant_type=password&username=scale%40example.com&password=correct+horse+battery"
curl -fs "$a/v1/users" -H 'Content-Type: application/json' -d "{\"email\":\"scale@example.com\",\"password\":\"$pw\"}" >/dev/null

# one service: A's pair refreshes at B, and a session B revokes is refused by A
pair=$(curl -fs "$a/oauth/token" -d "$login")
next=$(curl -fs "$b/oauth/token" -d "grant_type=refresh_token&refresh_token=$(echo "$pair" | json_get refresh_token)")
access=$(echo "$next" | json_get access_token)
[ "$(curl -s -o /dev/null -w '%{http_code}' "$a/v1/me" -H "Authorization: Bearer $access")" = 200 ] || { echo "A refused B's token" >&2; exit 1; }
curl -fs "$b/oauth/revoke" -d "token=$(echo "$next" | json_get refresh_token)" >/dev/null
for _ in $(seq 1 50); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$a/v1/me" -H "Authorization: Bearer $access")" = 401 ] && break
  sleep 0.02
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$a/v1/me" -H "Authorization: Bearer $access")" = 401 ] || { echo "A still accepts a session B revoked" >&2; exit 1; }

tokens() { # n -> n fresh refresh tokens, comma-separated
  local t=""
  for _ in $(seq 1 "$1"); do t="$t,$(curl -fs "$a/oauth/token" -d "$login" | json_get refresh_token)"; done
  echo "${t#,}"
}
drive() { # name base connections script [env...] -> requests/s on stdout
  local name=$1 base=$2 c=$3 script=$4
  shift 4
  cat "$root/scripts/bench/common.lua" "$root/scripts/bench/$script" > "$work/$name.lua"
  env "$@" wrk -t "$c" -c "$c" -d "${seconds}s" --latency -s "$work/$name.lua" "$base" | tail -n 1 | json_get rps
}
half=$(( conns / 2 ))
me=$(curl -fs "$a/oauth/token" -d "$login" | json_get access_token)
results="$work/results"
: > "$results"
for round in 1 2; do
  one=$(drive refresh_one "$a" "$conns" refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth BENCH_TOKENS="$(tokens "$conns")")
  ta=$(tokens "$half"); tb=$(tokens "$half")
  drive refresh_a "$a" "$half" refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth BENCH_TOKENS="$ta" > "$work/ra" &
  drive refresh_b "$b" "$half" refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth BENCH_TOKENS="$tb" > "$work/rb"
  wait
  echo "refresh $round $one $(cat "$work/ra") $(cat "$work/rb")" >> "$results"
  one=$(drive me_one "$a" "$conns" get.lua BENCH_PATH=/v1/me BENCH_SCHEME=Bearer BENCH_TOKEN="$me")
  drive me_a "$a" "$half" get.lua BENCH_PATH=/v1/me BENCH_SCHEME=Bearer BENCH_TOKEN="$me" > "$work/ma" &
  drive me_b "$b" "$half" get.lua BENCH_PATH=/v1/me BENCH_SCHEME=Bearer BENCH_TOKEN="$me" > "$work/mb"
  wait
  echo "me $round $one $(cat "$work/ma") $(cat "$work/mb")" >> "$results"
done
ceiling=$("$TESSERA_BENCH_BIN" db --url "$url" --connections "$conns" --seconds "$seconds" | tail -n 1 | json_get ops_per_s)

mkdir -p "$out"
"$python" - "$results" "$ceiling" "$seconds" "$conns" "$(nproc)" > "$out/scale-out.md" <<'PY'
import statistics, sys, time
rows = [l.split() for l in open(sys.argv[1])]
ceiling, seconds, conns, cores = float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
print("# Scale-out: two instances on one Postgres\n")
print(f"Written by `make bench-scale-out` on {time.strftime('%Y-%m-%d')}: {cores} vCPUs shared by both instances,")
print(f"Postgres and wrk; {conns} connections in all (split 4 + 4 for the pair), {seconds} s per case, 2 rounds,")
print("medians. What it means: [README.md](README.md#scale-out).\n")
print("| case | one instance (req/s) | pair: A + B (req/s) | pair / one | database ceiling (tx/s) |")
print("|---|---|---|---|---|")
for case, label in (("refresh", "refresh rotated, native"), ("me", "GET /v1/me")):
    r = [x for x in rows if x[0] == case]
    one = statistics.median(float(x[2]) for x in r)
    pair = statistics.median(float(x[3]) + float(x[4]) for x in r)
    c = f"{ceiling:,.0f}" if case == "refresh" else "–"
    print(f"| {label} | {one:,.0f} | {pair:,.0f} | {pair / one:.2f}× | {c} |")
print("\nBefore the load: a pair issued by A refreshed at B, and a session revoked at B was refused by A")
print("within 20 ms (Postgres `LISTEN/NOTIFY`): the two instances are one service.")
PY
cat "$out/scale-out.md"
