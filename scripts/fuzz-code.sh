#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the code that parses untrusted bytes: runs
# each target of fuzz/ for FUZZ_SECONDS seconds (default 60), one after the other, and fails
# with the path of every crash file found.
#
#   scripts/fuzz-code.sh [TARGET...]    default: every target (`cargo fuzz list`)
#
#   FUZZ_SECONDS   seconds per target (default 60; `make test` runs 20)
#   FUZZ_JOBS      libFuzzer processes per target (default 1: the machine has two cores)
#
# The stable toolchain builds the targets with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags),
# with debug assertions and overflow checks on (`-a`). cargo-fuzz is installed with
# `cargo install --locked` when missing. Each target starts from its committed seeds
# (fuzz/corpus/<target>/) and keeps what it learns in fuzz/target/corpus/<target>/ (not
# committed); crashes land in fuzz/artifacts/<target>/ and replay with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run -a <target> <crash file>` in fuzz/.
set -euo pipefail
shopt -s nullglob

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-1}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-code: installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

start=$(date +%s)
cargo fuzz build -a
echo "fuzz-code: built the targets in $(($(date +%s) - start)) s"

extra=()
# -jobs forks workers that log to fuzz-<n>.log; one process logs to our log itself
[ "$jobs" -le 1 ] || extra=(-jobs="$jobs" -workers="$jobs")
failed=()
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "corpus/$t"
  log="target/fuzz-$t.log"
  echo "fuzz-code: $t for ${seconds} s"
  # the first corpus folder takes what is learnt; the committed seeds are only read
  if cargo fuzz run -a "$t" "target/corpus/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 "${extra[@]}" >"$log" 2>&1; then
    runs=$(cat "$log" fuzz-*.log 2>/dev/null | awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}')
    cov=$(cat "$log" fuzz-*.log 2>/dev/null | grep -o 'cov: [0-9]*' | tail -1 || true)
    echo "fuzz-code: $t: no crash ($runs runs, ${cov:-cov: ?})"
  else
    crash=$(cat "$log" fuzz-*.log 2>/dev/null | grep -o 'Test unit written to [^ ]*' | sed 's/Test unit written to //' | sort -u || true)
    echo "fuzz-code: $t FAILED; log: fuzz/$log" >&2
    cat "$log" fuzz-*.log 2>/dev/null | grep -m 20 -E -A2 'panicked at|ERROR: libFuzzer|SUMMARY' >&2 || true
    for c in $crash; do case "$c" in /*) ;; *) c="$PWD/${c#./}" ;; esac; echo "fuzz-code: $t: crash file $c" >&2; done
    failed+=("$t")
  fi
  rm -f fuzz-*.log
done

echo "fuzz-code: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-code: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz-code: ${#targets[@]} targets, ${seconds} s each, no crash"
