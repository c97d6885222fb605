#!/usr/bin/env bash
# The Python tools the tests drive, installed from PyPI into target/test-venv on first use and
# reused after: schemathesis (scripts/fuzz.sh), matplotlib (scripts/bench.sh's chart) and the
# official Prometheus client, whose OpenMetrics parser reads /metrics in the end-to-end tests,
# aiosmtpd, the SMTP server the e-mail tests deliver to, authlib (a real OAuth 2 client), PyJWT, for the README's resource-server
# example, Selenium, which drives Swagger UI in headless Chromium, and Django with simplejwt and
# djoser, and Flask with flask-jwt-extended (the versions of tests/fixtures/django and flask), the
# original services the conformance kit is checked against (tests/peers). Prints the venv's python.
#
#   scripts/test-venv.sh django-legacy   venvs of their own with the originals' legacy versions
#   scripts/test-venv.sh flask-legacy    (tests/fixtures/*-legacy): Django 4.2, simplejwt 5.3.1,
#                                        djoser 2.2.3; Flask 1.1, flask-jwt-extended 3.25
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${CARGO_TARGET_DIR:-$root/target}/test-venv"
want="schemathesis==4.32.5 authlib==1.6.5 requests==2.32.5 prometheus-client==0.23.1 matplotlib==3.9.4 aiosmtpd==1.4.6 pyjwt[crypto]==2.15.1 selenium==4.51.0 django==5.2.19 djangorestframework==3.18.3 djangorestframework-simplejwt==5.5.1 djoser==2.3.5 flask==3.1.3 werkzeug==3.1.9 flask-jwt-extended==4.7.4"
case "${1:-}" in
  django-legacy)
    venv="$venv-django-legacy"
    want="django==4.2.30 djangorestframework==3.15.2 djangorestframework-simplejwt==5.3.1 djoser==2.2.3 PyJWT==2.8.0" ;;
  flask-legacy)
    venv="$venv-flask-legacy"
    want="flask==1.1.4 werkzeug==1.0.1 flask-jwt-extended==3.25.1 PyJWT==1.7.1 jinja2<3 itsdangerous<2 markupsafe<2.1" ;;
esac
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
