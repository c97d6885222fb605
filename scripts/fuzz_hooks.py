"""schemathesis hooks for scripts/fuzz.sh: every protected operation gets a live token of its face.

The tokens of schemathesis.toml are obtained once, before the run, and the run itself ends them:
`POST /v1/logout` with `scope=global`, `/deleteall`, `/auth/invalidate-sessions/` and the rest
revoke the fuzz user's sessions, and every later call of a protected operation then met only 401.
Here each face's token is obtained afresh when the last one was refused (`retry_on=[401]`), so the
protected operations are exercised with real tokens throughout."""

import json
import os
import urllib.parse
import urllib.request

import schemathesis

BASE = os.environ["TESSERA_FUZZ_BASE"]
CALLER_KEY = os.environ["TESSERA_FUZZ_CALLER_KEY"]
EMAIL, PASSWORD = "fuzz@example.com", "fuzz-password-long-enough"

# the security scheme of each protected operation (openapi/openapi.json)
SCHEME = {
    "/v1/me": "native",
    "/v1/logout": "native",
    "/v1/password": "native",
    "/v1/sessions": "native",
    "/v1/sessions/{id}": "native",
    "/auth/invalidate-refresh-tokens/": "drf",
    "/auth/invalidate-sessions/": "drf",
    "/users/me/": "djoser",
    "/api/v1/protected": "flask_access",
    "/api/v1/refresh/token": "flask_refresh",
    "/api/v1/logout": "flask_refresh",
    "/me": "medods",
    "/logout": "medods",
    "/generate": "caller",
    "/deleteall": "caller",
}


def _call(path, body=None, form=None, headers=None):
    data, h = None, dict(headers or {})
    if body is not None:
        data, h["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data, h["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(BASE + path, data=data, headers=h, method="POST")
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read() or b"{}")


def _token(scheme):
    """A fresh token of the face: a new session of the fuzz user (the caller key for Medods'
    trusted routes)."""
    if scheme == "caller":
        return ("X-Caller-Key", CALLER_KEY)
    if scheme == "native":
        t = _call("/oauth/token", form={"grant_type": "password", "username": EMAIL, "password": PASSWORD})
        return ("Authorization", "Bearer " + t["access_token"])
    if scheme == "drf":
        form = {"grant_type": "password", "username": EMAIL, "password": PASSWORD, "client_id": "tessera"}
        return ("Authorization", "Bearer " + _call("/auth/token/", form=form)["access_token"])
    if scheme == "djoser":
        return ("Authorization", "JWT " + _call("/auth/jwt/create/", {"email": EMAIL, "password": PASSWORD})["access"])
    if scheme in ("flask_access", "flask_refresh"):
        t = _call("/api/v1/login", {"email": EMAIL, "password": PASSWORD})
        return ("Authorization", "Bearer " + t["access_token" if scheme == "flask_access" else "refresh_token"])
    t = _call("/generate", {"user_id": 1, "GUID": "fuzz"}, headers={"X-Caller-Key": CALLER_KEY})
    return ("Authorization", "Bearer " + t["access"])


def _scheme(case):
    return SCHEME.get(case.operation.path, "")


@schemathesis.auth(refresh_interval=None, retry_on=[401], cache_by_key=lambda case, ctx: _scheme(case)).apply_to(
    path=list(SCHEME)
)
class LiveToken:
    def get(self, case, ctx):
        return _token(_scheme(case))

    def set(self, case, data, ctx):
        name, value = data
        case.headers = case.headers or {}
        case.headers[name] = value
