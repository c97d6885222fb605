#!/usr/bin/env bash
# The Python tools the tests drive, installed from PyPI into target/test-venv on first use and
# reused after: schemathesis (scripts/fuzz.sh), matplotlib (scripts/bench.sh's chart) and the
# official Prometheus client, whose OpenMetrics parser reads /metrics in the end-to-end tests,
# aiosmtpd, the SMTP server the e-mail tests deliver to, PyJWT, for the README's resource-server
# example, and Selenium, which drives Swagger UI in headless Chromium. Prints the venv's python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${CARGO_TARGET_DIR:-$root/target}/test-venv"
want="schemathesis==4.32.5 prometheus-client==0.23.1 matplotlib==3.9.4 aiosmtpd==1.4.6 pyjwt[crypto]==2.10.1 selenium==4.51.0"
stamp="$venv/.installed"
# one installer at a time: tests that need it run in parallel
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv" >&2
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
