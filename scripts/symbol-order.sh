#!/usr/bin/env bash
# Records which functions a running server executes, and writes them to
# crates/cli/symbol-order.txt, which the release build hands to the linker
# (crates/cli/build.rs): the code a server runs is then laid out together, and a steady server
# keeps about 5 MiB of its binary resident instead of most of its 17 MB of code.
#
#   scripts/symbol-order.sh     builds the release binary, runs it under callgrind on SQLite and
#                               on Postgres ($DATABASE_URL, or a throwaway cluster) through
#                               scripts/bench/train.py, and writes the file
#
# Run it again when the bench report says the order's names are missing from the binary
# (a dependency or the toolchain changed the symbols' names). Needs valgrind.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "symbol-order.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
if [ -z "${DATABASE_URL:-}" ]; then
  exec "$root/scripts/with-postgres.sh" -- "$0" "$@"
fi
(cd "$root" && TESSERA_NO_SYMBOL_ORDER=1 cargo build --release --quiet -p tessera-cli --bin tessera)
bin="$root/target/release/tessera"
python=$("$root/scripts/test-venv.sh")
work=$(mktemp -d /tmp/tessera-order.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

train() { # name database-url
  local name=$1 url=$2 port dir base secret
  dir="$work/$name"
  mkdir -p "$dir"
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  export TESSERA__DATABASE__URL="$url" TESSERA__SERVER__PORT="$port" TESSERA__METRICS__PORT=0 TESSERA__SECRETS__MASTER_KEY_FILE="$dir/master.key" \
    TESSERA__LOG__LEVEL=error TESSERA__DIALECTS__SIMPLEJWT__REFRESH_POLICY=rotate
  (cd "$dir" && exec valgrind --tool=callgrind --demangle=no --callgrind-out-file="$dir/callgrind.out" "$bin" serve >"$dir/server.log" 2>&1) &
  pid=$!
  for _ in $(seq 1 600); do curl -fs "$base/health/live" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fs "$base/health/live" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  secret=$(cd "$dir" && "$bin" client create --client-id order-rs --confidential 2>/dev/null | awk '/client_secret/{print $2}')
  "$python" "$root/scripts/bench/train.py" "$base" 20 "order-rs:$secret"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  # every function callgrind saw run, in the order it first named them
  grep -oE '^c?fn=\([0-9]+\) .*' "$dir/callgrind.out" | sed -E 's/^c?fn=\([0-9]+\) //' >> "$work/names"
}

pg_url=$("$python" -c 'import sys, uuid; base, _, q = sys.argv[1].partition("?"); base = base.rsplit("/", 1)[0]; print(f"{base}/tessera_order_{uuid.uuid4().hex[:8]}" + (f"?{q}" if q else ""))' "$DATABASE_URL")
train sqlite "sqlite:$work/order.db?mode=rwc"
train postgres "$pg_url"
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u > "$work/symbols"
# the binary's own functions, first seen first, each once
awk 'NR == FNR {s[$1] = 1; next} ($1 in s) && !seen[$1]++' "$work/symbols" "$work/names" > "$root/crates/cli/symbol-order.txt"
echo "symbol-order.sh: $(wc -l < "$root/crates/cli/symbol-order.txt") functions in crates/cli/symbol-order.txt"
