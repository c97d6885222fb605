#!/usr/bin/env bash
# make bench: Tessera under load, beside the ceilings that bound each case, measured in one run.
#
#   scripts/bench.sh                 10 s per case (BENCH_SECONDS), 8 connections (BENCH_CONNECTIONS)
#
# Builds a release binary (unless TESSERA_BIN and TESSERA_BENCH_BIN name binaries already built),
# then for Postgres (a throwaway cluster, as make test starts one, or $DATABASE_URL) and SQLite:
# starts `tessera serve`, drives each case with wrk, samples the server's RSS, and measures the
# ceilings: the same server's /health/live for HTTP, the refresh's own database transaction run
# straight on the store with the same driver and connection count (tessera-bench db), and Argon2
# at the configured parameters on every core (tessera-bench argon2). Writes a markdown report and
# a PNG chart to docs/benchmarks/ (BENCH_OUT), and prints the report.
#
#   BENCH_PROFILE=1 scripts/bench.sh  also samples the server with perf during each case, and
#                                    writes where its CPU time went to docs/benchmarks/profiles/
#
# wrk, not a home-made driver: the rotated-refresh cases need each connection to present the token
# its previous response returned, which wrk's Lua hooks do with one connection per thread.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds="${BENCH_SECONDS:-10}"
conns="${BENCH_CONNECTIONS:-8}"
flood="${BENCH_FLOOD_CONNECTIONS:-200}"
out="${BENCH_OUT:-$root/docs/benchmarks}"
command -v wrk >/dev/null || { echo "bench.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }
# Postgres: $DATABASE_URL, or a throwaway cluster as make test starts one
if [ -z "${DATABASE_URL:-}" ]; then
  exec "$root/scripts/with-postgres.sh" -- "$0" "$@"
fi

if [ -z "${TESSERA_BIN:-}" ]; then
  (cd "$root" && cargo build --release --quiet -p tessera-cli -p tessera-bench --bins)
  TESSERA_BIN="$root/target/release/tessera"
  TESSERA_BENCH_BIN="$root/target/release/tessera-bench"
fi
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
TESSERA_BIN=$(abs "$TESSERA_BIN")
TESSERA_BENCH_BIN=$(abs "${TESSERA_BENCH_BIN:-$(dirname "$TESSERA_BIN")/tessera-bench}")
python=$("$root/scripts/test-venv.sh")
work=$(mktemp -d /tmp/tessera-bench.XXXXXX)
results="$work/results.jsonl"
: > "$results"
pid=""
sampler=""
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

record() { # backend case json-from-stdin
  "$python" -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(backend=sys.argv[1], case=sys.argv[2]); print(json.dumps(d))' "$1" "$2" >> "$results"
}

wrk_case() { # backend case connections script [env...]
  local backend=$1 case=$2 c=$3 script=$4
  shift 4
  local t=$(( c < 16 ? c : 16 ))
  local from to
  from=$(date +%s.%N)
  # a file, not a pipe: wrk reads the script once per thread
  cat "$root/scripts/bench/common.lua" "$root/scripts/bench/$script" > "$work/$case.lua"
  local perf_pid=""
  if [ -n "${BENCH_PROFILE:-}" ] && [ -n "$pid" ]; then
    perf record -q -F 999 -o "$work/$backend-$case.perf" -p "$pid" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  env "$@" wrk -t "$t" -c "$c" -d "${seconds}s" --latency -s "$work/$case.lua" "$base" | tail -n 1 > "$work/$case.json"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    mkdir -p "$out/profiles"
    perf report -q -i "$work/$backend-$case.perf" --no-children --sort dso,symbol --percent-limit 1 --stdio 2>/dev/null \
      | sed -E -e 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' -e 's/[[:space:]]+$//' | grep -v '^$' | head -n 40 > "$out/profiles/$backend-$case.txt" || true
  fi
  to=$(date +%s.%N)
  "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); d.update(t0=float(sys.argv[2]), t1=float(sys.argv[3])); print(json.dumps(d))' \
    "$work/$case.json" "$from" "$to" | record "$backend" "$case"
}

# $conns refresh tokens from as many logins with the form body given, comma-separated: a
# rotated chain's token is spent once, so each rotated case starts from fresh ones
fresh_tokens() { # login-body
  local tokens="" t
  for _ in $(seq 1 "$conns"); do
    t=$(curl -fs "$base/oauth/token" -d "$1" | json_get refresh_token) || return 1
    tokens="$tokens${tokens:+,}$t"
  done
  echo "$tokens"
}

# A ceiling measured around a case: for half the case's time just before it and half just
# after, on the same server and store. The machine's speed drifts during a run (the neighbours of
# a virtual machine, the tables' growth): GET /health/live answered 103,000 and 131,000 requests a
# second in two 5 s runs a few seconds apart on this machine. A case is held to the ceiling
# measured beside it; the run's first ceiling stays in the report, and so does the ratio to it.
ceiling() { # backend case http|db before|after
  local half=$(( (seconds + 1) / 2 ))
  if [ "$3" = http ]; then
    seconds=$half wrk_case "$1" "ceiling_$2_$4" "$conns" get.lua BENCH_PATH=/health/live
  else
    "$TESSERA_BENCH_BIN" db --url "$url" --connections "$conns" --seconds "$half" | record "$1" "ceiling_$2_$4"
  fi
}

paired_case() { # backend case http|db script [env...]: the case at $conns connections, its ceiling around it
  local backend=$1 case=$2 kind=$3 script=$4
  shift 4
  ceiling "$backend" "$case" "$kind" before
  wrk_case "$backend" "$case" "$conns" "$script" "$@"
  ceiling "$backend" "$case" "$kind" after
}

# A rotated refresh on Postgres alternated with its database ceiling the same way: a second of tessera-bench db
# on the server's store, then a second of the case on chains opened just before it (a chain's
# token is spent once: each round logs in again, outside both clocks). The machine's CPU time is
# taken around each second, so the report can say what a rotation costs the machine against a
# bare transaction. The case's own run, for its latencies, is as before.
alternated_db_case() { # backend case login-body script [env...]
  local backend=$1 case=$2 body=$3 script=$4
  shift 4
  local start
  start=$(fresh_tokens "$body")
  wrk_case "$backend" "$case" "$conns" "$script" "$@" BENCH_TOKENS="$start"
  local rounds=$(( seconds < 10 ? seconds : 10 )) i chains
  local slice=$(( seconds / rounds ))
  : > "$work/$case-cpu"
  for i in $(seq 1 "$rounds"); do
    "$python" "$root/scripts/bench/cpu.py" "$pid" >> "$work/$case-cpu"
    "$TESSERA_BENCH_BIN" db --url "$url" --connections "$conns" --seconds "$slice" | record "$backend" "ceiling_${case}_round$i"
    "$python" "$root/scripts/bench/cpu.py" "$pid" >> "$work/$case-cpu"
    chains=$(fresh_tokens "$body")
    "$python" "$root/scripts/bench/cpu.py" "$pid" >> "$work/$case-cpu"
    seconds=$slice wrk_case "$backend" "${case}_round$i" "$conns" "$script" "$@" BENCH_TOKENS="$chains"
    "$python" "$root/scripts/bench/cpu.py" "$pid" >> "$work/$case-cpu"
  done
  # the ticks of the ceiling's seconds and of the case's, summed over the rounds
  "$python" -c 'import json,sys
s=[json.loads(l) for l in open(sys.argv[1])]
d=lambda a,b: {k: b[k]-a[k] for k in a}
add=lambda xs: {k: sum(x[k] for x in xs) for k in xs[0]}
print(json.dumps({"ceiling_ticks": add([d(s[i],s[i+1]) for i in range(0,len(s),4)]), "case_ticks": add([d(s[i+2],s[i+3]) for i in range(0,len(s),4)]),
  "ticks_per_s": __import__("os").sysconf("SC_CLK_TCK")}))' "$work/$case-cpu" | record "$backend" "${case}_cpu"
}

# A stateless HTTP case (each request the same) is also run alternating with its ceiling, a
# second of each at a time, ten rounds of a 10 s case: /health/live moved between 93,000 and
# 157,000 requests a second within one case's 20 s here, so even a ceiling measured just before
# and just after a case missed what the machine did during it. The ratio is the case's requests
# in its seconds against the ceiling's in as many seconds beside them. The case's own run, for
# its latencies, is as before.
alternated_case() { # backend case script [env...]
  local backend=$1 case=$2 script=$3
  shift 3
  wrk_case "$backend" "$case" "$conns" "$script" "$@"
  local rounds=$(( seconds < 10 ? seconds : 10 )) i
  local slice=$(( seconds / rounds ))
  for i in $(seq 1 "$rounds"); do
    seconds=$slice wrk_case "$backend" "ceiling_${case}_round$i" "$conns" get.lua BENCH_PATH=/health/live
    seconds=$slice wrk_case "$backend" "${case}_round$i" "$conns" "$script" "$@"
  done
}

# how the binary's code is laid out against crates/cli/symbol-order.txt (the book: Development,
# The release binary's layout): the steady RSS depends on it
if command -v nm >/dev/null && [ -f "$root/crates/cli/symbol-order.txt" ]; then
  nm --defined-only "$TESSERA_BIN" | "$python" "$root/scripts/bench/layout.py" "$root/crates/cli/symbol-order.txt" | record all code_layout
fi

json_get() { "$python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

run_backend() { # name url
  local backend=$1 url=$2
  local port dir
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  dir="$work/$backend"
  mkdir -p "$dir"
  base="http://127.0.0.1:$port"
  export TESSERA__DATABASE__URL="$url" TESSERA__SERVER__PORT="$port" TESSERA__METRICS__PORT=0 TESSERA__SECRETS__MASTER_KEY_FILE="$dir/master.key" \
    TESSERA__LOG__LEVEL=error TESSERA__PASSWORD__ATTEMPTS_PER_ADDRESS_PER_MINUTE=0 \
    TESSERA__PASSWORD__LOCKOUT__THRESHOLD=0 TESSERA__PASSWORD__LOCKOUT__ACCOUNT_THRESHOLD=0 \
    TESSERA__DIALECTS__SIMPLEJWT__REFRESH_POLICY=rotate TESSERA__DIALECTS__MEDODS__CALLER_KEY=bench-caller-key-0123456789
  (cd "$dir" && exec "$TESSERA_BIN" serve >"$dir/server.log" 2>&1) &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "$base/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "$base/health/live" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  # the server's resident memory, every 100 ms: "unix-time kib anonymous-kib" (the rest is file
  # pages: the binary's code and data, shared with every process that maps the same file)
  (while kill -0 "$pid" 2>/dev/null; do
     echo "$(date +%s.%N) $(awk '/VmRSS/{r=$2} /RssAnon/{a=$2} END{print r+0, a+0}' "/proc/$pid/status" 2>/dev/null || echo 0 0)"; sleep 0.1; done) > "$dir/rss" &
  sampler=$!

  local pw="correct horse battery" login sj="" dj="" access sjaccess secret
  curl -fs "$base/v1/users" -H 'Content-Type: application/json' -d "{\"email\":\"bench@example.com\",\"password\":\"$pw\"}" >/dev/null
  login="grant_type=password&username=bench%40example.com&password=correct+horse+battery"
  for _ in $(seq 1 "$conns"); do
    sj="$sj,$(curl -fs "$base/api/token/" -H 'Content-Type: application/json' -d "{\"email\":\"bench@example.com\",\"password\":\"$pw\"}" | json_get refresh)"
  done
  access=$(curl -fs "$base/oauth/token" -d "$login" | json_get access_token)
  sjaccess=$(curl -fs "$base/auth/jwt/create/" -H 'Content-Type: application/json' -d "{\"email\":\"bench@example.com\",\"password\":\"$pw\"}")
  dj=$(echo "$sjaccess" | json_get refresh)
  sjaccess=$(echo "$sjaccess" | json_get access)
  secret=$(cd "$dir" && "$TESSERA_BIN" client create --client-id bench-rs --confidential 2>/dev/null | awk '/client_secret/{print $2}')
  sleep 2 # past the hashing threads' idle second, when they give their memory back
  echo "$(date +%s.%N)" > "$dir/steady_at"

  wrk_case "$backend" health "$conns" get.lua BENCH_PATH=/health/live
  # where the cores go while logins run: the hashing threads, the rest of the server, and the
  # rest of the machine (the load tool, the database)
  "$python" "$root/scripts/bench/cpu.py" "$pid" > "$work/cpu-before"
  wrk_case "$backend" login "$conns" post.lua BENCH_PATH=/oauth/token BENCH_CONTENT_TYPE=application/x-www-form-urlencoded BENCH_BODY="$login"
  "$python" "$root/scripts/bench/cpu.py" "$pid" > "$work/cpu-after"
  "$python" -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:3]); print(json.dumps({k: b[k]-a[k] for k in a}))' \
    "$work/cpu-before" "$work/cpu-after" | record "$backend" login_cpu
  alternated_case "$backend" verify post.lua BENCH_PATH=/api/token/verify/ BENCH_CONTENT_TYPE=application/json BENCH_BODY="{\"token\":\"$sjaccess\"}"
  alternated_case "$backend" me get.lua BENCH_PATH=/v1/me BENCH_SCHEME=Bearer BENCH_TOKEN="$access"
  if [ "$backend" = postgres ]; then
    alternated_db_case "$backend" refresh_native_rotated "$login" refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth
  else
    # SQLite's ceiling runs in another process on the server's file: each second of it would
    # throw away the server's page cache (SQLite sees the file changed), so it is measured around
    local tokens
    tokens=$(fresh_tokens "$login")
    paired_case "$backend" refresh_native_rotated db refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth BENCH_TOKENS="$tokens"
  fi
  # DPoP beside Bearer: the same two calls with a proof each (RFC 9449), made ahead by
  # tessera-bench since wrk cannot sign; each is checked and its jti written to the store
  local per_thread=$(( conns < 16 ? conns : 16 )) proofs_n=$(( seconds * ${BENCH_DPOP_PROOFS_PER_SECOND:-12000} ))
  local daccess dtokens=""
  daccess=$(curl -fs "$base/oauth/token" -H "DPoP: $("$TESSERA_BENCH_BIN" dpop-proofs --htm POST --htu "$base/oauth/token")" -d "$login" | json_get access_token)
  for _ in $(seq 1 "$conns"); do
    dtokens="$dtokens,$(curl -fs "$base/oauth/token" -H "DPoP: $("$TESSERA_BENCH_BIN" dpop-proofs --htm POST --htu "$base/oauth/token")" -d "$login" | json_get refresh_token)"
  done
  "$TESSERA_BENCH_BIN" dpop-proofs --htm GET --htu "$base/v1/me" --access "$daccess" --count "$proofs_n" --files "$per_thread" --out "$work/me-proofs"
  paired_case "$backend" me_dpop http get.lua BENCH_PATH=/v1/me BENCH_SCHEME=DPoP BENCH_TOKEN="$daccess" BENCH_PROOFS="$work/me-proofs"
  "$TESSERA_BENCH_BIN" dpop-proofs --htm POST --htu "$base/oauth/token" --count "$proofs_n" --files "$per_thread" --out "$work/refresh-proofs"
  paired_case "$backend" refresh_native_rotated_dpop db refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth \
    BENCH_TOKENS="${dtokens#,}" BENCH_PROOFS="$work/refresh-proofs"
  paired_case "$backend" refresh_simplejwt_rotated db refresh_chain.lua BENCH_PATH=/api/token/refresh/ BENCH_STYLE=simplejwt BENCH_TOKENS="${sj#,}"
  alternated_case "$backend" refresh_djoser_reuse post.lua BENCH_PATH=/auth/jwt/refresh/ BENCH_CONTENT_TYPE=application/json BENCH_BODY="{\"refresh\":\"$dj\"}"
  alternated_case "$backend" introspect post.lua BENCH_PATH=/oauth/introspect BENCH_CONTENT_TYPE=application/x-www-form-urlencoded \
    BENCH_BODY="token=$access" BENCH_AUTH="Basic $(printf 'bench-rs:%s' "$secret" | base64 -w0)"

  # The control: as many connections hammering GET /health/live, and rotated refreshes beside
  # them. What the refreshes lose here is the cost of any flood on cores shared with its load
  # tool, whatever the flood asks for.
  local more
  more=$(fresh_tokens "$login")
  wrk_case "$backend" health_flood "$flood" get.lua BENCH_PATH=/health/live &
  local flooding=$!
  sleep 0.5
  wrk_case "$backend" refresh_during_health_flood "$conns" refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth BENCH_TOKENS="$more"
  wait "$flooding"

  # A login flood at a client's pace, and rotated refreshes beside it: 200 clients each logging
  # in again 100 ms after its answer (BENCH_FLOOD_DELAY_MS), about 1,500 logins a second here,
  # fourteen times what Argon2 on these cores hashes. The excess is answered 503 at once; refresh p99 is
  # held to its unloaded value.
  # The unloaded refresh again, just before the flood: the tables have grown by every rotation
  # since the first refresh case, and the flood is compared with the same tables.
  more=$(fresh_tokens "$login")
  sleep 2 # the logins' hashing memory goes back after the hashing threads' idle second
  wrk_case "$backend" refresh_before_flood "$conns" refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth BENCH_TOKENS="$more"
  more=$(fresh_tokens "$login")
  sleep 2
  echo "$(date +%s.%N)" > "$dir/before_flood"
  wrk_case "$backend" login_flood_paced "$flood" post.lua BENCH_PATH=/oauth/token BENCH_CONTENT_TYPE=application/x-www-form-urlencoded \
    BENCH_BODY="$login" BENCH_DELAY_MS="${BENCH_FLOOD_DELAY_MS:-100}" &
  flooding=$!
  sleep 0.5
  wrk_case "$backend" refresh_during_paced_flood "$conns" refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth BENCH_TOKENS="$more"
  wait "$flooding"
  sleep 3
  echo "$(date +%s.%N)" > "$dir/after_paced_flood"

  # The same 200 clients without a pause: as many logins as the server can answer, tens of
  # thousands of 503s a second, a denial of service at the HTTP layer, beside rotated refreshes
  more=$(fresh_tokens "$login")
  wrk_case "$backend" login_flood "$flood" post.lua BENCH_PATH=/oauth/token BENCH_CONTENT_TYPE=application/x-www-form-urlencoded BENCH_BODY="$login" &
  flooding=$!
  sleep 0.5
  wrk_case "$backend" refresh_during_flood "$conns" refresh_chain.lua BENCH_PATH=/oauth/token BENCH_STYLE=oauth BENCH_TOKENS="$more"
  wait "$flooding"
  local flood_end
  flood_end=$(date +%s)
  sleep 3
  echo "$(date +%s.%N)" > "$dir/after_flood"

  # the database ceiling while the server idles; then the server's size once its pool has let
  # the flood's extra connections go (idle for 30 s, closed at the pool's next sweep)
  "$TESSERA_BENCH_BIN" db --url "$url" --connections "$conns" --seconds "$seconds" | record "$backend" ceiling_db
  local idle_wait=$(( flood_end + ${BENCH_IDLE_WAIT:-65} - $(date +%s) ))
  [ "$idle_wait" -gt 0 ] && sleep "$idle_wait"
  echo "$(date +%s.%N)" > "$dir/after_idle"
  sleep 0.5

  kill "$sampler" 2>/dev/null || true
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  sampler=""
  "$python" - "$dir" "$backend" >> "$results" <<'PY'
import json, sys
d, backend = sys.argv[1], sys.argv[2]
rows = [tuple(map(float, l.split())) for l in open(f"{d}/rss") if len(l.split()) == 3]
steady_at = float(open(f"{d}/steady_at").read()); after = float(open(f"{d}/after_flood").read())
idle = float(open(f"{d}/after_idle").read()); before = float(open(f"{d}/before_flood").read())
after_paced = float(open(f"{d}/after_paced_flood").read())
# the last sample taken at or before t: what follows a mark (the next logins) is not in it
def sample(t): return max((r for r in rows if r[0] <= t), key=lambda r: r[0], default=(0, 0, 0))
def at(t): return sample(t)[1] / 1024
print(json.dumps({"backend": backend, "case": "rss", "steady_mib": at(steady_at), "steady_anon_mib": sample(steady_at)[2] / 1024, "before_flood_mib": at(before), "after_paced_flood_mib": at(after_paced),
                  "after_flood_mib": at(after), "after_idle_mib": at(idle), "samples": [[r[0], r[1] / 1024] for r in rows]}))
PY
}

# The C reference Argon2 (Debian's `argon2`), one process per core, hashing for $seconds: the
# other implementation login is measured against, when it is installed.
argon2_c() {
  command -v argon2 >/dev/null || return 0
  local n from to total=0 p
  n=$(nproc)
  from=$(date +%s.%N)
  for p in $(seq 1 "$n"); do
    (end=$(( $(date +%s) + seconds )); c=0
     while [ "$(date +%s)" -lt "$end" ]; do
       printf 'correct horse battery' | argon2 tessera-bench-salt -id -t 2 -k 19456 -p 1 -r >/dev/null; c=$((c + 1))
     done; echo "$c" > "$work/argon2-c-$p") &
  done
  wait
  to=$(date +%s.%N)
  for p in $(seq 1 "$n"); do total=$(( total + $(cat "$work/argon2-c-$p") )); done
  "$python" -c 'import json,sys; t,a,b,n=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),int(sys.argv[4]); print(json.dumps({"ceiling":"argon2-c","ops_per_s":t/(b-a),"threads":n,"memory_kib":19456,"iterations":2,"parallelism":1}))' \
    "$total" "$from" "$to" "$n" | record all ceiling_argon2_c
}

sqlite_url="sqlite:$work/bench.db"
# a fresh database of its own on the server (Tessera creates it; tessera-bench reuses it)
pg_url=$("$python" -c 'import sys, uuid; base, _, q = sys.argv[1].partition("?"); base = base.rsplit("/", 1)[0]; print(f"{base}/tessera_bench_{uuid.uuid4().hex[:8]}" + (f"?{q}" if q else ""))' "$DATABASE_URL")
run_backend postgres "$pg_url"
run_backend sqlite "$sqlite_url"
"$TESSERA_BENCH_BIN" argon2 --seconds "$seconds" | record all ceiling_argon2
argon2_c

mkdir -p "$out"
"$python" "$root/scripts/bench/report.py" "$results" "$out" "$seconds" "$conns" "$flood"
cat "$out/report.md"
