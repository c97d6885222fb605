"""The load of make test-ha: refresh chains and logins over two Tessera instances, a primary killed
mid-load, and what it cost. Standard library only.

    python3 scripts/ha_drive.py A_URL B_URL KILL_COMMAND...

Prints one JSON object: the counts and times scripts/test-ha.sh reports and checks.

A chain is how a careful client refreshes: it keeps the last token Tessera answered with, presents
it, and adopts the new pair only from a 200. A 503 or a broken connection is retried with the
same token, as RFC 6749's clients do. A chain whose answered token is refused lost a rotation (or
its session was revoked): the test requires none.
"""

import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.parse

A, B = sys.argv[1], sys.argv[2]
KILL = sys.argv[3:]
CHAINS = 16
WARMUP = 5.0
AFTER_RECOVERY = 15.0
CAP = 90.0
TIMEOUT = 10.0
PASSWORD = "correct horse battery"


class Client:
    """One keep-alive connection to one instance; reconnects after any failure."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def call(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
            return r.status, data
        except TimeoutError:
            self.conn = None
            return "timeout", b""
        except (OSError, http.client.HTTPException):
            self.conn = None
            return "connection", b""


lock = threading.Lock()
events = []  # (t, kind, status)
stop = threading.Event()
t0 = time.monotonic()


def note(kind, status):
    with lock:
        events.append((time.monotonic() - t0, kind, status))


def login(client, email):
    for _ in range(100):
        status, body = client.call("POST", "/oauth/token", {"grant_type": "password", "username": email, "password": PASSWORD})
        if status == 200:
            return json.loads(body)
        time.sleep(0.2)
    raise SystemExit(f"login failed: {status} {body[:200]!r}")


class Chain:
    def __init__(self, n, token):
        self.n, self.token, self.answered, self.refused = n, token, 0, None


def run_chains(chains, base):
    client = Client(base)
    while not stop.is_set():
        for c in chains:
            if c.refused or stop.is_set():
                continue
            status, body = client.call("POST", "/oauth/token", {"grant_type": "refresh_token", "refresh_token": c.token})
            note("refresh", status)
            if status == 200:
                c.token = json.loads(body)["refresh_token"]
                c.answered += 1
            elif status in (400, 401):
                c.refused = body.decode(errors="replace")[:300]
            else:
                time.sleep(0.05)


def run_logins(base, email):
    client = Client(base)
    while not stop.is_set():
        status, _ = client.call("POST", "/oauth/token", {"grant_type": "password", "username": email, "password": PASSWORD})
        note("login", status)
        if status != 200:
            time.sleep(0.05)


def main():
    setup = Client(A)
    email = f"ha-{int(time.time())}@example.com"
    status, body = setup.call("POST", "/v1/users", json.dumps({"email": email, "password": PASSWORD}), {"Content-Type": "application/json"})
    if status not in (200, 201):
        raise SystemExit(f"registration failed: {status} {body[:200]!r}")
    chains = [Chain(i, login(setup, email)["refresh_token"]) for i in range(CHAINS)]
    workers = []
    # 8 workers, half on each instance, two chains each; one login worker per instance
    for w in range(8):
        base = A if w % 2 == 0 else B
        workers.append(threading.Thread(target=run_chains, args=(chains[2 * w : 2 * w + 2], base)))
    workers += [threading.Thread(target=run_logins, args=(base, email)) for base in (A, B)]
    started = time.monotonic() - t0
    for t in workers:
        t.start()
    time.sleep(WARMUP)
    killed_at = time.monotonic() - t0
    killed = subprocess.run(KILL, capture_output=True, text=True, check=True).stdout.strip()
    # on until AFTER_RECOVERY seconds pass without a failure, once the switch has begun
    while time.monotonic() - t0 < killed_at + CAP:
        time.sleep(0.1)
        with lock:
            failures = [t for t, _, s in events if t > killed_at and s != 200]
        if failures and time.monotonic() - t0 > failures[-1] + AFTER_RECOVERY:
            break
    stop.set()
    for t in workers:
        t.join()
    failures = [t for t, _, s in events if t > killed_at and s != 200]
    # recovered: the first refresh answered after the last failure
    recovered_at = min((t for t, kind, s in events if kind == "refresh" and s == 200 and failures and t > failures[-1]), default=None)

    # every chain's last answered token still refreshes
    check = Client(B)
    lost = []
    for c in chains:
        if c.refused:
            lost.append({"chain": c.n, "answered": c.answered, "refused": c.refused})
            continue
        status, body = check.call("POST", "/oauth/token", {"grant_type": "refresh_token", "refresh_token": c.token})
        if status != 200:
            lost.append({"chain": c.n, "answered": c.answered, "refused": f"{status} {body[:300]!r}"})

    # each instance follows the new leader with its LISTEN/NOTIFY listener: a session revoked at B
    # is refused by A within a second (Postgres instances hear revocations only through it)
    pair = login(Client(A), email)
    me = Client(A)
    status, _ = me.call("GET", "/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert status == 200, status
    status, _ = Client(B).call("POST", "/oauth/revoke", {"token": pair["refresh_token"]})
    assert status == 200, status
    heard_after = None
    start = time.monotonic()
    while time.monotonic() - start < 5:
        status, _ = me.call("GET", "/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
        if status == 401:
            heard_after = time.monotonic() - start
            break
        time.sleep(0.01)

    statuses = {}
    for _, kind, s in events:
        key = f"{kind} {s}"
        statuses[key] = statuses.get(key, 0) + 1
    after = [e for e in events if e[0] > killed_at]
    print(json.dumps({
        "killed": killed,
        "chains": CHAINS,
        "rotations_answered": sum(c.answered for c in chains),
        "logins_answered": sum(1 for _, k, s in events if k == "login" and s == 200),
        "kill_to_first_refresh_s": None if recovered_at is None else round(recovered_at - killed_at, 2),
        "lost": lost,
        "statuses": statuses,
        "http_5xx_not_503": sum(1 for _, _, s in events if isinstance(s, int) and s >= 500 and s != 503),
        "http_503": sum(1 for _, _, s in events if s == 503),
        "timeouts": sum(1 for _, _, s in events if s == "timeout"),
        "connection_errors": sum(1 for _, _, s in events if s == "connection"),
        "rate_before_kill": round(sum(1 for t, _, _ in events if started + 1 <= t <= killed_at) / (killed_at - started - 1), 1),
        "failed_after_kill": sum(1 for _, _, s in after if s != 200),
        "first_failure_after_kill_s": round(failures[0] - killed_at, 2) if failures else None,
        "last_failure_after_kill_s": round(failures[-1] - killed_at, 2) if failures else None,
        "revocation_heard_after_s": None if heard_after is None else round(heard_after, 4),
    }))


main()
