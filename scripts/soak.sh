#!/usr/bin/env bash
# make soak: Tessera under a bounded run of mixed load and attacks, sampled as it goes.
#
#   scripts/soak.sh          SOAK_MINUTES (default 8) of mixed load per backend, Postgres then SQLite
#
# Builds a release binary (unless TESSERA_BIN names one), then for each backend (SOAK_BACKENDS,
# default "postgres sqlite"; Postgres is a throwaway cluster as make test starts one, or
# $DATABASE_URL) starts `tessera serve` behind a trusted proxy address (127.0.0.1, so that the
# load can come from many client addresses through X-Forwarded-For) and runs, in order:
#
#   1. invented methods: SOAK_METHODS (20,000) requests, each with a method never seen before;
#      the server's RSS and its metrics series before and after;
#   2. slow bodies: SOAK_SLOW (2,000) connections that send headers and one byte of a body, then
#      nothing, reconnecting when cut, for SOAK_PHASE_SECONDS (30), while GET /health/live is
#      timed every 20 ms; the server log is searched for "Too many open files";
#   3. a registration flood from one address for SOAK_PHASE_SECONDS, while real logins from
#      other addresses are sent twice a second: their statuses;
#   4. the soak: SOAK_MINUTES of everything at once: sessions' lives (login, three rotated
#      refreshes, /v1/me, logout, which revokes), reads of /v1/me, a registration flood, invented
#      methods, a quarter of the slow clients, and the probes. The server's RSS, open
#      descriptors, database size and metrics series are sampled every 2 s.
#
# Writes docs/benchmarks/soak.md and soak.png (SOAK_OUT), stating each bound and whether it
# held, and prints the report. Needs wrk (apt-get install wrk).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
minutes="${SOAK_MINUTES:-8}"
methods="${SOAK_METHODS:-20000}"
slow="${SOAK_SLOW:-2000}"
phase="${SOAK_PHASE_SECONDS:-30}"
backends="${SOAK_BACKENDS:-postgres sqlite}"
out="${SOAK_OUT:-$root/docs/benchmarks}"
command -v wrk >/dev/null || { echo "soak.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }
if [[ " $backends " == *" postgres "* ]] && [ -z "${DATABASE_URL:-}" ]; then
  exec "$root/scripts/with-postgres.sh" -- "$0" "$@"
fi
if [ -z "${TESSERA_BIN:-}" ]; then
  (cd "$root" && cargo build --release --quiet -p tessera-cli --bin tessera)
  TESSERA_BIN="$root/target/release/tessera"
fi
case "$TESSERA_BIN" in /*) ;; *) TESSERA_BIN="$PWD/$TESSERA_BIN" ;; esac
python=$("$root/scripts/test-venv.sh")
work=$(mktemp -d /tmp/tessera-soak.XXXXXX)
results="$work/results.jsonl"
: > "$results"
pid=""
background=()
cleanup() {
  for p in "${background[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_get() { "$python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
record() { # backend phase, a JSON object on stdin
  "$python" -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(backend=sys.argv[1], phase=sys.argv[2]); print(json.dumps(d))' "$1" "$2" >> "$results"
}
wrk_run() { # name connections seconds script [env...]: the summary line into $dir/wrk-name.json
  local name=$1 c=$2 s=$3 script=$4
  shift 4
  cat "$root/scripts/soak/common.lua" "$root/scripts/soak/$script" > "$dir/$name.lua"
  env "$@" wrk -t "$c" -c "$c" -d "${s}s" --timeout 10s -s "$dir/$name.lua" "$base" | tail -n 1 > "$dir/wrk-$name.json"
}
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
series() { curl -fs "$metrics/metrics" | grep -vc '^#' || true; }

run_backend() { # name url
  local backend=$1 url=$2 port mport
  dir="$work/$backend"
  mkdir -p "$dir/config"
  port=$(free_port)
  mport=$(free_port)
  base="http://127.0.0.1:$port"
  metrics="http://127.0.0.1:$mport"
  # native logins get the 2-hour access tokens of the `extended` profile: the reads' one token
  # outlives the soak (with `standard`'s 5 minutes it expired and the reads became 401s)
  printf '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n[oauth]\ndefault_profile = "extended"\n' > "$dir/config/default.toml"
  export TESSERA__DATABASE__URL="$url" TESSERA__SERVER__PORT="$port" TESSERA__METRICS__PORT="$mport" \
    TESSERA__SECRETS__MASTER_KEY_FILE="$dir/master.key" TESSERA__LOG__LEVEL=warn \
    TESSERA__DIALECTS__MEDODS__CALLER_KEY=soak-caller-key-0123456789
  (cd "$dir" && exec "$TESSERA_BIN" serve >"$dir/server.log" 2>&1) &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "$base/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "$base/health/live" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  local pw="correct horse battery staple" login access
  curl -fs "$base/v1/users" -H 'Content-Type: application/json' -H 'X-Forwarded-For: 10.9.0.1' \
    -d "{\"email\":\"soak@example.com\",\"password\":\"$pw\"}" >/dev/null
  login="grant_type=password&username=soak%40example.com&password=correct+horse+battery+staple"
  access=$(curl -fs "$base/oauth/token" -H 'X-Forwarded-For: 10.9.0.2' -d "$login" | json_get access_token)
  sleep 2 # past the hashing threads' idle second, when they give their memory back

  # 1. invented methods
  local before_rss before_series after_rss after_series
  before_rss=$(rss_kib); before_series=$(series)
  "$python" "$root/scripts/soak/driver.py" --base "$base" --seconds 0 --out "$dir/methods" --methods "$methods"
  sleep 2
  after_rss=$(rss_kib); after_series=$(series)
  "$python" -c 'import json,sys; w=json.load(open(sys.argv[1])); print(json.dumps(dict(wrk=w, rss_before_kib=int(sys.argv[2]), rss_after_kib=int(sys.argv[3]), series_before=int(sys.argv[4]), series_after=int(sys.argv[5]))))' \
    "$dir/methods/methods.json" "$before_rss" "$after_rss" "$before_series" "$after_series" | record "$backend" methods

  # 2. slow bodies, with /health/live timed beside them
  "$python" "$root/scripts/soak/driver.py" --base "$base" --seconds "$phase" --out "$dir/slow" --slow "$slow" --health-every 0.02
  "$python" -c 'import json,sys; d=json.load(open(sys.argv[1]+"/slow.json")); d["probes"]=[json.loads(l) for l in open(sys.argv[1]+"/probes.jsonl")]; d["too_many_open_files"]=sys.argv[2]; print(json.dumps(d))' \
    "$dir/slow" "$(grep -c 'Too many open files' "$dir/server.log" || true)" | record "$backend" slow

  # 3. a registration flood from one address, real logins from others beside it
  wrk_run flood 8 "$phase" register.lua SOAK_FROM=10.66.0.1 SOAK_TAG="flood$RANDOM" &
  local flooding=$!
  "$python" "$root/scripts/soak/driver.py" --base "$base" --seconds "$((phase - 2))" --out "$dir/flood" --login-every 0.5 --login "$login"
  wait "$flooding"
  "$python" -c 'import json,sys; d={"wrk": json.load(open(sys.argv[1])), "probes": [json.loads(l) for l in open(sys.argv[2])]}; print(json.dumps(d))' \
    "$dir/wrk-flood.json" "$dir/flood/probes.jsonl" | record "$backend" flood

  # 4. the soak: everything at once, sampled every 2 s
  local seconds
  seconds=$("$python" -c "print(int(float('$minutes') * 60))")
  (while kill -0 "$pid" 2>/dev/null; do
     local db
     if [ "$backend" = sqlite ]; then db=$(cat "${url#sqlite:}" "${url#sqlite:}-wal" 2>/dev/null | wc -c)
     else db=$(psql -Atq "$url" -c 'select pg_database_size(current_database())' 2>/dev/null || echo 0); fi
     echo "$(date +%s.%N) $(rss_kib) $(ls "/proc/$pid/fd" | wc -l) $db $(series)"
     sleep 2
   done) > "$dir/samples" 2>/dev/null &
  background+=($!)
  local jobs=()
  wrk_run sessions 4 "$seconds" sessions.lua SOAK_LOGIN="$login" SOAK_DELAY_MS=20 & jobs+=($!)
  wrk_run reads 2 "$seconds" me.lua SOAK_TOKEN="$access" SOAK_DELAY_MS=2 & jobs+=($!)
  wrk_run registrations 2 "$seconds" register.lua SOAK_FROM=10.66.0.2 SOAK_TAG="soak$RANDOM" SOAK_DELAY_MS=10 & jobs+=($!)
  "$python" "$root/scripts/soak/driver.py" --base "$base" --seconds "$seconds" --out "$dir/soak" --slow $(( slow / 4 )) --method-every 0.005 \
    --health-every 0.1 --login-every 1 --login "$login" & jobs+=($!)
  wait "${jobs[@]}"
  kill "${background[@]}" 2>/dev/null || true
  background=()
  "$python" - "$dir" "$(grep -c 'Too many open files' "$dir/server.log" || true)" "$(grep -c ' ERROR ' "$dir/server.log" || true)" <<'PY' | record "$backend" soak
import json, sys
d = sys.argv[1]
out = {"samples": [list(map(float, l.split())) for l in open(f"{d}/samples") if len(l.split()) == 5],
       "slow": json.load(open(f"{d}/soak/slow.json")), "probes": [json.loads(l) for l in open(f"{d}/soak/probes.jsonl")],
       "too_many_open_files": int(sys.argv[2]), "error_lines": int(sys.argv[3])}
for name in ("sessions", "reads", "registrations"):
    out[name] = json.load(open(f"{d}/wrk-{name}.json"))
m = json.load(open(f"{d}/soak/methods.json"))
out["invented"] = {"requests": m["requests"], "rps": m["requests"] / max(m["seconds"], 1e-9), "p99_ms": 0, "statuses": m["statuses"]}
print(json.dumps(out))
PY
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
}

for backend in $backends; do
  case "$backend" in
    sqlite) run_backend sqlite "sqlite:$work/soak.db" ;;
    postgres)
      pg_url=$("$python" -c 'import sys, uuid; base, _, q = sys.argv[1].partition("?"); base = base.rsplit("/", 1)[0]; print(f"{base}/tessera_soak_{uuid.uuid4().hex[:8]}" + (f"?{q}" if q else ""))' "$DATABASE_URL")
      run_backend postgres "$pg_url" ;;
    *) echo "soak.sh: unknown backend $backend" >&2; exit 2 ;;
  esac
done

mkdir -p "$out"
"$python" "$root/scripts/soak/report.py" "$results" "$out" "$minutes" "$methods" "$slow" "$phase"
cat "$out/soak.md"
