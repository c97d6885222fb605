"""The calls a running Tessera answers most, a few times each: the workload whose code
scripts/symbol-order.sh records and lays out together. Usage: train.py BASE_URL [ROUNDS]"""
import base64
import json
import sys
import urllib.error
import urllib.request

base = sys.argv[1].rstrip("/")
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10


def call(method, path, body=None, form=None, headers=None):
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = "&".join(f"{k}={urllib.parse.quote(str(v))}" for k, v in form.items()).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raw = e.read()
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


import urllib.parse  # noqa: E402

pw = "correct horse battery"
email = "train@example.com"
call("POST", "/v1/users", {"email": email, "password": pw})
login = {"grant_type": "password", "username": email, "password": pw}
native = call("POST", "/oauth/token", form=login)
sj = call("POST", "/api/token/", {"email": email, "password": pw})
dj = call("POST", "/auth/jwt/create/", {"email": email, "password": pw})
client = sys.argv[3] if len(sys.argv) > 3 else None
for _ in range(rounds):
    call("GET", "/health/live")
    call("GET", "/health/ready")
    call("GET", "/.well-known/jwks.json")
    call("GET", "/.well-known/openid-configuration")
    call("GET", "/v1/me", headers={"Authorization": f"Bearer {native['access_token']}"})
    call("GET", "/v1/me", headers={"Authorization": "Bearer not-a-token"})
    native = call("POST", "/oauth/token", form={"grant_type": "refresh_token", "refresh_token": native["refresh_token"]}) or native
    call("POST", "/api/token/verify/", {"token": sj["access"]})
    call("POST", "/api/token/verify/", {"token": "x"})
    sj = {**sj, **(call("POST", "/api/token/refresh/", {"refresh": sj["refresh"]}) or {})}
    call("POST", "/auth/jwt/refresh/", {"refresh": dj["refresh"]})
    call("POST", "/auth/jwt/verify/", {"token": dj["access"]})
    call("GET", "/auth/users/me/", headers={"Authorization": f"JWT {dj['access']}"})
    if client:
        auth = "Basic " + base64.b64encode(client.encode()).decode()
        call("POST", "/oauth/introspect", form={"token": native["access_token"]}, headers={"Authorization": auth})
    call("GET", "/nope")
call("POST", "/oauth/token", form={**login, "password": "wrong"})
call("POST", "/oauth/revoke", form={"token": native["refresh_token"], "client_id": "tessera"})
