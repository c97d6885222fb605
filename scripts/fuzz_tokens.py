"""Waits for the server of scripts/fuzz.sh, registers a user and prints `export` lines with a
token of each face, for the security schemes of schemathesis.toml."""

import json
import os
import sys
import time
import urllib.parse
import urllib.request

BASE = os.environ["TESSERA_FUZZ_BASE"]
EMAIL, PASSWORD = "fuzz@example.com", "fuzz-password-long-enough"


def call(path, body=None, form=None, headers=None):
    data, h = None, dict(headers or {})
    if body is not None:
        data, h["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data, h["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(BASE + path, data=data, headers=h, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read() or b"{}")


for _ in range(150):
    try:
        call("/health/live")
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("the server did not start")

call("/v1/users", {"email": EMAIL, "password": PASSWORD})
native = call("/oauth/token", form={"grant_type": "password", "username": EMAIL, "password": PASSWORD})
drf = call("/auth/token/", form={"grant_type": "password", "username": EMAIL, "password": PASSWORD, "client_id": "tessera"})
djoser = call("/auth/jwt/create/", {"email": EMAIL, "password": PASSWORD})
flask = call("/api/v1/login", {"email": EMAIL, "password": PASSWORD})
medods = call("/generate", {"user_id": 1, "GUID": "fuzz"}, headers={"X-Caller-Key": os.environ["TESSERA_FUZZ_CALLER_KEY"]})

for name, value in [
    ("NATIVE", native["access_token"]),
    ("DRF", drf["access_token"]),
    ("DJOSER", "JWT " + djoser["access"]),
    ("FLASK_ACCESS", flask["access_token"]),
    ("FLASK_REFRESH", flask["refresh_token"]),
    ("MEDODS", medods["access"]),
]:
    print(f"export TESSERA_FUZZ_{name}='{value}'")
