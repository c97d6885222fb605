#!/usr/bin/env bash
# The test `make test` runs for `make soak`: a few seconds of each phase with the debug binary
# already built, on both databases, into a temporary directory. It must start, drive every phase
# and write a report with its bounds and chart; the figures themselves are not judged here
# (never in a timed test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --quiet -p tessera-cli --bin tessera)
out=$(mktemp -d /tmp/tessera-soak-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
TESSERA_BIN="$target/debug/tessera" SOAK_MINUTES=0.2 SOAK_PHASE_SECONDS=5 SOAK_METHODS=400 SOAK_SLOW=100 \
  SOAK_OUT="$out" "$root/scripts/soak.sh" > "$out/stdout" 2> "$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
fail() { echo "soak smoke test: $*" >&2; cat "$out/stdout" >&2; exit 1; }
[ -s "$out/soak.png" ] || fail "no chart"
grep -q '^## Bounds' "$out/soak.md" || fail "no bounds table"
for backend in postgres sqlite; do
  for bound in "RSS after 400 requests with invented methods" "GET /health/live p99 while 100 slow-body" "during a registration flood" \
               "RSS does not grow" "open descriptors do not grow" "the database grows only" "no 5xx answer in the mixed load"; do
    grep -q "^| [^|]*$bound[^|]* | $backend | " "$out/soak.md" || fail "no $backend row for: $bound"
  done
  grep -q "^| $backend | sessions (login" "$out/soak.md" || fail "no $backend mixed-load row"
done
echo "soak smoke test: every phase reported"
