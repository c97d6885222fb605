"""The soak's own clients (scripts/soak.sh), those wrk cannot be: slow clients that send their
headers and one byte of a body, then nothing; requests with invented HTTP methods (wrk sends
only the methods it knows); and probes that time `GET /health/live` and real logins from
addresses of their own while everything else runs.

    driver.py --base http://127.0.0.1:PORT --seconds S --out DIR
              [--slow N] [--methods N | --method-every SECONDS]
              [--health-every SECONDS] [--login-every SECONDS --login FORM]

Writes DIR/slow.json (connections opened, cut by the server, how long they lived, the most open
at once, refused connects), DIR/methods.json (requests sent with invented methods, their
statuses) and DIR/probes.jsonl (one line per probe: kind, unix time, latency in ms, status; 0
for a failed connection or a probe that took over 10 s).
"""

import argparse
import asyncio
import json
import os
import resource
import time


def parse_base(base):
    host, _, port = base.removeprefix("http://").partition(":")
    return host, int(port.rstrip("/"))


async def exchange(host, port, raw, timeout=10.0):
    """One request on a connection of its own: the status, or 0 on failure."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return 0
    try:
        writer.write(raw)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    except (OSError, asyncio.TimeoutError, ValueError):
        return 0
    finally:
        writer.close()


async def slow_client(host, port, deadline, stats):
    """Sends headers announcing a 1,000-byte body and one byte of it, then waits for the server
    to give up; when it does, connects again. Until the deadline."""
    head = (f"POST /v1/users HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{").encode()
    while time.time() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats["connect_failures"] += 1
            await asyncio.sleep(0.5)
            continue
        opened = time.time()
        stats["opened"] += 1
        stats["open_now"] += 1
        stats["max_open"] = max(stats["max_open"], stats["open_now"])
        try:
            writer.write(head)
            await writer.drain()
            left = deadline - time.time()
            # EOF (or a 408) when the server cuts the connection
            await asyncio.wait_for(reader.read(), max(left, 0.01))
            stats["cut"] += 1
            stats["lifetimes"].append(time.time() - opened)
        except asyncio.TimeoutError:
            stats["still_open_at_end"] += 1
        except OSError:
            stats["cut"] += 1
            stats["lifetimes"].append(time.time() - opened)
        finally:
            stats["open_now"] -= 1
            writer.close()


def letters(i):
    s = ""
    while True:
        s = chr(65 + i % 26) + s
        i //= 26
        if i == 0:
            return s


async def invented_methods(host, port, worker, count, every, deadline, stats):
    """GET /health/live with a method never sent before on every request (QBZAAB, ...), on one
    keep-alive connection (a new one when the server closes it): `count` of them, or one every
    `every` seconds until the deadline."""
    sent, reader, writer = 0, None, None
    while (count and sent < count) or (not count and time.time() < deadline):
        if time.time() > deadline + 600:
            break
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                stats["connect_failures"] += 1
                await asyncio.sleep(0.1)
                continue
        sent += 1
        method = f"Q{letters(worker)}Z{letters(sent)}"
        try:
            writer.write(f"{method} /health/live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status_line = await asyncio.wait_for(reader.readline(), 10)
            length, closing = 0, False
            while True:
                line = await asyncio.wait_for(reader.readline(), 10)
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
                if name.lower() == "connection" and "close" in value.lower():
                    closing = True
            if length:
                await asyncio.wait_for(reader.readexactly(length), 10)
            parts = status_line.split()
            status = parts[1].decode() if len(parts) >= 2 else "0"
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            status, closing = "0", True
        stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
        stats["requests"] += 1
        if closing:
            writer.close()
            writer = None
        if every:
            await asyncio.sleep(every)
    if writer is not None:
        writer.close()


async def probe(kind, host, port, raw, every, deadline, out):
    while time.time() < deadline:
        started = time.time()
        status = await exchange(host, port, raw(started))
        out.append({"kind": kind, "t": started, "ms": (time.time() - started) * 1000, "status": status})
        await asyncio.sleep(max(every - (time.time() - started), 0))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--slow", type=int, default=0)
    p.add_argument("--methods", type=int, default=0)
    p.add_argument("--method-every", type=float, default=0)
    p.add_argument("--health-every", type=float, default=0)
    p.add_argument("--login-every", type=float, default=0)
    p.add_argument("--login", default="")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = parse_base(a.base)
    deadline = time.time() + a.seconds
    stats = {"slow": a.slow, "opened": 0, "cut": 0, "connect_failures": 0, "open_now": 0, "max_open": 0,
             "still_open_at_end": 0, "lifetimes": []}
    probes = []
    methods = {"requests": 0, "connect_failures": 0, "statuses": {}}
    started = time.time()
    workers = 4 if a.methods else 1
    if a.methods or a.method_every:
        tasks_m = [invented_methods(host, port, w, a.methods // workers, a.method_every, deadline, methods) for w in range(workers)]
    else:
        tasks_m = []
    tasks = [slow_client(host, port, deadline, stats) for _ in range(a.slow)] + tasks_m
    if a.health_every:
        health = f"GET /health/live HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        tasks.append(probe("health", host, port, lambda _t: health, a.health_every, deadline, probes))
    if a.login_every:
        counter = iter(range(1, 1 << 30))

        def login(_t):
            n = next(counter)
            body = a.login.encode()
            # each real login from an address of its own, none of them the flood's
            return (f"POST /oauth/token HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                    f"Content-Type: application/x-www-form-urlencoded\r\nX-Forwarded-For: 10.77.{n // 250 % 250}.{n % 250 + 1}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        tasks.append(probe("login", host, port, login, a.login_every, deadline, probes))
    await asyncio.gather(*tasks)
    lifetimes = sorted(stats.pop("lifetimes"))
    stats.pop("open_now")
    if lifetimes:
        stats["lifetime_median_s"] = lifetimes[len(lifetimes) // 2]
        stats["lifetime_max_s"] = lifetimes[-1]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "slow.json"), "w") as f:
        json.dump(stats, f)
    methods["seconds"] = time.time() - started
    with open(os.path.join(a.out, "methods.json"), "w") as f:
        json.dump(methods, f)
    with open(os.path.join(a.out, "probes.jsonl"), "w") as f:
        for r in probes:
            f.write(json.dumps(r) + "\n")


asyncio.run(main())
