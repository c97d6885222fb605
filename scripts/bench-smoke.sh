#!/usr/bin/env bash
# The test `make test` runs for `make bench`: a 1-second run with the debug binaries already
# built, into a temporary directory. It must start, drive every case and write a report with its
# targets and chart; the figures themselves are not judged here (never in a timed test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
# `cargo test` builds the tessera binary (its tests run it) but not tessera-bench's
(cd "$root" && cargo build --quiet -p tessera-cli -p tessera-bench --bins)
out=$(mktemp -d /tmp/tessera-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
TESSERA_BIN="$target/debug/tessera" TESSERA_BENCH_BIN="$target/debug/tessera-bench" BENCH_SECONDS=1 BENCH_FLOOD_CONNECTIONS=40 BENCH_IDLE_WAIT=0 \
  BENCH_OUT="$out" "$root/scripts/bench.sh" > "$out/stdout" 2> "$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
fail() { echo "bench smoke test: $*" >&2; cat "$out/stdout" >&2; exit 1; }
[ -s "$out/chart.png" ] || fail "no chart"
grep -q '^## Targets' "$out/report.md" || fail "no targets table"
for backend in postgres sqlite; do
  for case in "HTTP ceiling" "login (native" "verify (simplejwt" "GET /v1/me" "refresh rotated, native" "refresh rotated, simplejwt" \
              "GET /v1/me with DPoP" "refresh rotated, native, with DPoP" "DPoP against Bearer: GET /v1/me" "DPoP against Bearer: refresh rotated" \
              "refresh not rotated" "introspection" "database ceiling" "refresh rotated, just before the floods" "login flood, paced" "refresh rotated during the paced flood" \
              "login flood, unpaced" "refresh rotated during the unpaced flood" \
              "control flood" "refresh rotated during the control flood"; do
    grep -q "^| $backend | $case" "$out/report.md" || fail "no $backend row for: $case"
  done
  # each case with an HTTP or database ceiling is held to the one measured around it, or, the
  # stateless ones and (on Postgres) the native rotated refresh, alternated with it
  around_list="GET /v1/me with DPoP|refresh rotated, native, with DPoP|refresh rotated, simplejwt"
  alternated_list="verify (simplejwt|GET /v1/me |refresh not rotated|introspection"
  if [ "$backend" = postgres ]; then
    alternated_list="$alternated_list|refresh rotated, native /oauth/token"
  else
    around_list="$around_list|refresh rotated, native /oauth/token"
  fi
  IFS='|' read -ra around <<< "$around_list"
  IFS='|' read -ra alternated <<< "$alternated_list"
  for case in "${around[@]}"; do
    grep "^| $backend | $case" "$out/report.md" | grep -q "measured around it" || fail "no ceiling around the $backend case: $case"
  done
  for case in "${alternated[@]}"; do
    grep "^| $backend | $case" "$out/report.md" | grep -q "alternated with it" || fail "no ceiling alternated with the $backend case: $case"
  done
done
grep -q 'Argon2 ceiling: ' "$out/report.md" || fail "no Argon2 ceiling"
grep -q 'steady RSS' "$out/report.md" || fail "no RSS figures"
grep -q '^- postgres: a rotation through the server took' "$out/report.md" || fail "no CPU split of the native rotated refresh"
grep -q '^Code layout: ' "$out/report.md" || fail "no code layout"
grep -q '^Login against Argon2 on every core, and where the cores went' "$out/report.md" || fail "no CPU split of the login case"
echo "bench smoke test: every case reported"
