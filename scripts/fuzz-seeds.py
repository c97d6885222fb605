#!/usr/bin/env python3
"""Writes the seed corpus of the cargo-fuzz targets (fuzz/corpus/<target>/) from the project's
real fixtures: the legacy deployments' tokens (tests/fixtures/legacy/tokens.json), the peers'
captured requests (tests/fixtures/<peer>/*.json), and claims as each face writes them. Run from
the repository root; the files are committed, so this is needed only to refresh them."""
import base64, glob, hashlib, json, os

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, "fuzz", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def jwts(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from jwts(v)
    elif isinstance(node, str) and node.startswith("eyJ") and node.count(".") == 2:
        yield node


fixtures = [f for f in (json.load(open(p)) for p in sorted(glob.glob(os.path.join(root, "tests/fixtures/*/*.json")))) if "request" in f]

# tokens: flag byte 0 = a token as presented (at the fixtures' minting day), 1 = claims to sign
legacy = json.load(open(os.path.join(root, "tests/fixtures/legacy/tokens.json")))
for t in sorted(set(jwts(legacy))):
    put("tokens", b"\x00" + t.encode())
for fx in fixtures:
    for t in sorted(set(jwts(fx["request"]))):
        put("tokens", b"\x00" + t.encode())
put("tokens", b"\x00" + base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"="))  # native refresh
put("tokens", b"\x00" + base64.b64encode(bytes(range(32))))  # Medods refresh
sid, jti = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "73578a194f1f411a8399ca96273605bc"
claims = [
    {"iss": "tessera", "sub": "1", "aud": "native", "sid": sid, "jti": jti, "iat": 1796130230, "exp": 4949730230, "token_type": "access"},
    {"iss": "tessera", "sub": "1", "aud": "drf-social-oauth2", "sid": sid, "jti": jti, "iat": 1796130230, "exp": 4949730230, "token_type": "access", "client_id": "app"},
    {"token_type": "access", "exp": 4949730230, "iat": 1796130230, "jti": jti, "user_id": 1, "sid": sid, "aud": "simplejwt"},
    {"token_type": "refresh", "exp": 4949730230, "iat": 1796130230, "jti": jti, "user_id": "1", "aud": "djoser"},
    {"token_type": "refresh", "exp": 4949730230, "iat": 1796130230, "jti": jti, "user_id": 1},
    {"iat": 1796130230, "nbf": 1796130230, "jti": sid, "exp": 4949730230, "identity": "1", "fresh": False, "type": "access", "sid": sid, "aud": "flask"},
    {"fresh": False, "iat": 1796130230, "jti": sid, "type": "refresh", "sub": "2", "nbf": 1796130230, "csrf": sid, "exp": 4949730230, "aud": "flask4"},
    {"user_id": 7, "GUID": "6f9619ff-8b86-d011-b42d-00c04fc964ff", "ip": "203.0.113.5", "pair_id": sid, "sid": sid, "iat": 1796130230, "exp": 4949730230, "aud": "medods"},
]
for c in claims:
    put("tokens", b"\x01" + json.dumps(c, separators=(",", ":")).encode())
# what the target found (see the README): exp at the end of i64, a legacy iat in the year 9999
put("tokens", b'\x01{"type":"access","exp":9223372036854775807,"iat":1,"jti":"f864e65a5d58419888a79b50caf1362a","sid":"f864e65a5d58419888a79b50caf1362a","identity":"1"}')
put("tokens", b'\x01{"token_type":"refresh","exp":253402300799,"iat":253402300000,"jti":"f864e65a5d58419888a79b50caf1362a","user_id":1}')

# bodies: the choice byte (0-4: a Content-Type of the target's list, 5: none, else a line), then the body
for fx in fixtures:
    req = fx["request"]
    body = req.get("body")
    if body is None:
        continue
    ct = req.get("headers", {}).get("Content-Type", "")
    raw = body if isinstance(body, str) else json.dumps(body)
    put("bodies", b"\xff" + ct.encode() + b"\n" + raw.encode())
put("bodies", b"\x00grant_type=password&username=ann%40example.com&password=correct+horse&scope=openid")
put("bodies", b"\x00grant_type=refresh_token&refresh_token=abc&refresh_token=def")
put("bodies", b'\x01{"grant_type":"client_credentials","client_id":"app","client_secret":null,"n":1}')
put("bodies", b"\x02[1, 2.5, \"x\"]")

# authorization: the header's value
for fx in fixtures:
    auth = fx["request"].get("headers", {}).get("Authorization")
    if auth:
        put("authorization", auth)
put("authorization", "Basic " + base64.b64encode(b"my%20app:s3cr%3At").decode())
put("authorization", "basic " + base64.b64encode(b"app:").decode())
put("authorization", "Bearer  a  b")

# email: addresses as users type them, look-alikes included
for e in ["ann@example.com", "  Ann.Lee+tag@Example.COM ", "аnn@example.com", "ann@example.coᴍ", "ｆｕｌｌ@ｗｉｄｔｈ.example",
          "deleted-7@deleted.invalid", "x@identities.invalid", "ß@straße.de", "a@b",
          "\u02ddB{traße@sMMMMM\U0001043ftMMMMM\u0418MMreß.de"]:  # the last: what the target found
    put("email", e)

# forwarded: the peer's index (0: trusted 10.0.0.2, 2: untrusted), then lines whose first byte
# picks the header (even: X-Forwarded-For, odd: Forwarded)
put("forwarded", b"\x00" + b"\x00203.0.113.9, 10.1.1.1")
put("forwarded", b"\x00" + b'\x01for="[2001:db8::1]:4711";proto=https, for=192.0.2.60:80')
put("forwarded", b"\x02" + b"\x006.6.6.6")
put("forwarded", b"\x03" + b"\x00unknown, ::1\n\x01for=_hidden;by=10.0.0.1")
