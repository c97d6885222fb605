#!/usr/bin/env bash
# Runs schemathesis over the OpenAPI document a freshly started Tessera serves, with every check
# (`st run --checks all`): no 5xx, every status and body as documented, 405 with `Allow`,
# schema-valid requests accepted and schema-violating ones refused.
#
#   scripts/fuzz.sh [MAX_EXAMPLES] [sqlite|postgres]
#       examples per operation, default 100 (`make fuzz`); the database, default sqlite. postgres
#       takes a fresh database on the server $DATABASE_URL names (scripts/with-postgres.sh).
#
# The server runs in a temporary directory, with a caller key for Medods' trusted
# routes, and with password throttling off: the fuzzer's thousands of logins from one address
# would otherwise meet 429s and leave the logic behind them untested (the throttling has its own
# end-to-end tests). A user is registered, and scripts/fuzz_hooks.py gives every protected
# operation a live token of its face, obtained afresh whenever the run has revoked the last one.
# schemathesis is installed from PyPI into target/test-venv on first use (scripts/test-venv.sh).
set -euo pipefail

examples="${1:-100}"
database="${2:-sqlite}"
root=$(cd "$(dirname "$0")/.." && pwd)
python=$("$root/scripts/test-venv.sh")
venv=$(dirname "$(dirname "$python")")
# TESSERA_BIN: a binary already built (`make test` passes the one its test build made)
bin="${TESSERA_BIN:-$root/target/debug/tessera}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
if [ -z "${TESSERA_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet -p tessera-cli --bin tessera)
fi
[ -x "$bin" ] || { echo "fuzz.sh: no binary at $bin" >&2; exit 1; }

dir=$(mktemp -d /tmp/tessera-fuzz.XXXXXX)
case "$database" in
  sqlite) db_url="sqlite:$dir/tessera.db" ;;
  postgres)
    [ -n "${DATABASE_URL:-}" ] || { echo "fuzz.sh postgres: DATABASE_URL names no server (run under scripts/with-postgres.sh)" >&2; exit 1; }
    db_url="${DATABASE_URL%/*}/tessera_fuzz_$(python3 -c 'import secrets; print(secrets.token_hex(6))')" ;;
  *) echo "fuzz.sh: the database is sqlite or postgres, not $database" >&2; exit 2 ;;
esac
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
caller_key="fuzz-caller-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
(
  cd "$dir"
  TESSERA__SERVER__PORT="$port" TESSERA__METRICS__PORT=0 TESSERA__DATABASE__URL="$db_url" \
    TESSERA__SECRETS__MASTER_KEY_FILE="$dir/master.key" \
    TESSERA__DIALECTS__MEDODS__CALLER_KEY="$caller_key" TESSERA__LOG__LEVEL=warn \
    TESSERA__PASSWORD__ATTEMPTS_PER_ADDRESS_PER_MINUTE=0 TESSERA__PASSWORD__LOCKOUT__THRESHOLD=0 \
    TESSERA__PASSWORD__LOCKOUT__ACCOUNT_THRESHOLD=0 \
    exec "$bin" serve >"$dir/server.log" 2>&1
) &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

base="http://127.0.0.1:$port"
export TESSERA_FUZZ_BASE="$base" TESSERA_FUZZ_CALLER_KEY="$caller_key"
eval "$(python3 "$root/scripts/fuzz_tokens.py")"

cd "$root"
status=0
# fresh tokens for the protected operations whenever the run has revoked the last ones
export PYTHONPATH="$root/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=fuzz_hooks
"$venv/bin/st" run "$base/openapi.json" --max-examples "$examples" --workers 2 \
  --seed "${FUZZ_SEED:-20261123}" --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log ---" >&2
  tail -n 50 "$dir/server.log" >&2
fi
exit "$status"
