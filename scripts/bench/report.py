"""Writes docs/benchmarks/report.md and chart.png from the JSON lines scripts/bench.sh collected.

Every figure is a ratio to a ceiling measured in the same run, on the same machine: absolute
numbers on 2 shared cores say little, ratios say how far Tessera is from what bounds it.
"""

import json
import os
import platform
import sys
import time

results_path, out, seconds, conns, flood = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
rows = [json.loads(line) for line in open(results_path) if line.strip()]


def get(backend, case):
    for r in rows:
        if r.get("case") == case and r.get("backend") in (backend, "all"):
            return r
    return None


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} logical CPUs ({cpu}), {platform.system()} {platform.release()}"


argon_rust = get("all", "ceiling_argon2")
argon_c = get("all", "ceiling_argon2_c")
# login is held to the fastest implementation measured
argon = max((a for a in (argon_rust, argon_c) if a), key=lambda a: a["ops_per_s"], default=None)
checks = []  # (target, backend, measured, verdict)
login_notes = []  # where the cores went during the login case
rotation_notes = []  # what a rotated refresh costs the machine, against a bare transaction
table = []  # rows of the case table
chart = []  # (label, ratio, target or None)


def ratio(a, b):
    return a / b if a and b else 0.0


def rate(row):
    """Requests (wrk) or transactions (tessera-bench) a second of a ceiling's row."""
    return (row.get("ops_per_s") or row.get("rps")) if row else None


for backend in ("postgres", "sqlite"):
    http = get(backend, "health")
    db = get(backend, "ceiling_db")
    if not http:
        continue
    table.append((backend, "HTTP ceiling: GET /health/live", http, "", None))
    cases = [
        ("login", "login (native password grant)", argon, "Argon2 on every core", 0.90),
        ("verify", "verify (simplejwt /api/token/verify/)", http, "HTTP ceiling", 0.75),
        ("me", "GET /v1/me", http, "HTTP ceiling", 0.40),
        ("me_dpop", "GET /v1/me with DPoP", http, "HTTP ceiling", None),
        ("refresh_native_rotated", "refresh rotated, native /oauth/token", db, "database ceiling", 0.75),
        ("refresh_native_rotated_dpop", "refresh rotated, native, with DPoP", db, "database ceiling", None),
        ("refresh_simplejwt_rotated", "refresh rotated, simplejwt", db, "database ceiling", 0.75),
        ("refresh_djoser_reuse", "refresh not rotated (djoser, reuse)", http, "HTTP ceiling", 0.60),
        ("introspect", "introspection of an access token (RFC 7662)", http, "HTTP ceiling", 0.50),
    ]
    for case, label, ceiling, ceiling_name, target in cases:
        r = get(backend, case)
        if not r:
            continue
        run_rps = rate(ceiling)
        # the ceiling measured around the case (just before and just after it), where there is
        # one: the ratio is then the case's own, not the machine's drift since the run's first
        around = [rate(get(backend, f"ceiling_{case}_{when}")) for when in ("before", "after")]
        # or, for a stateless case and the native rotated refresh, alternated with it a second at
        # a time: its requests in its seconds against the ceiling's in as many seconds beside them
        rounds = []
        for i in range(1, 100):
            c, t = get(backend, f"{case}_round{i}"), get(backend, f"ceiling_{case}_round{i}")
            if not (c and t):
                break
            rounds.append((c["requests"], c["seconds"], t["requests"], t["seconds"]))
        if rounds:
            case_rps = sum(r[0] for r in rounds) / sum(r[1] for r in rounds)
            ceil_rps = sum(r[2] for r in rounds) / sum(r[3] for r in rounds)
            q = ratio(case_rps, ceil_rps)
            each = [ratio(r[0] / r[1], r[2] / r[3]) for r in rounds]
            note = (f"{q:.0%} of {ceiling_name} alternated with it ({len(rounds)} rounds of {rounds[0][1]:.0f} s each: "
                    f"{case_rps:,.0f}/s against {ceil_rps:,.0f}/s; rounds {min(each):.0%}–{max(each):.0%})")
            if run_rps:
                note += f"; {ratio(r['rps'], run_rps):.0%} of the run's ({run_rps:,.0f}/s)"
        elif all(around):
            ceil_rps = sum(around) / 2
            q = ratio(r["rps"], ceil_rps)
            note = f"{q:.0%} of {ceiling_name} measured around it ({ceil_rps:,.0f}/s: {around[0]:,.0f} before, {around[1]:,.0f} after)"
            if run_rps:
                note += f"; {ratio(r['rps'], run_rps):.0%} of the run's ({run_rps:,.0f}/s)"
        else:
            ceil_rps = run_rps
            q = ratio(r["rps"], ceil_rps)
            note = f"{q:.0%} of {ceiling_name} ({ceil_rps:,.0f}/s)" if ceil_rps else ""
        table.append((backend, label, r, note, q))
        chart.append((f"{backend}\n{case}", q, target))
        if target is not None and (case != "login" or backend == "postgres"):
            checks.append((f"{label} ≥ {target:.0%} of the {ceiling_name}", backend, f"{q:.0%}", q >= target))
        split = get(backend, f"{case}_cpu")
        if split and rounds:
            # the machine's CPU time per operation in the alternated seconds: the case's against
            # the ceiling's, both bound by the same two cores
            tick_us = 1e6 / split["ticks_per_s"]
            n_case, n_ceil = sum(r[0] for r in rounds), sum(r[2] for r in rounds)
            c, t = split["case_ticks"], split["ceiling_ticks"]
            if n_case and n_ceil and c["total"] and t["total"]:
                per = lambda ticks, n: ticks * tick_us / n
                rotation_notes.append(
                    f"- {backend}: a rotation through the server took {per(c['busy'], n_case):.0f} µs of the machine's CPU "
                    f"(the server {per(c['server_other'] + c['hashing'], n_case):.0f} µs, the database and wrk "
                    f"{per(c['busy'] - c['server_other'] - c['hashing'], n_case):.0f} µs; idle {1 - c['busy'] / c['total']:.0%}), "
                    f"a bare transaction {per(t['busy'], n_ceil):.0f} µs (tessera-bench and the database; idle "
                    f"{1 - t['busy'] / t['total']:.0%}). "
                    + (f"With the cores busy in both, the ratio follows these costs: {per(t['busy'], n_ceil) / per(c['busy'], n_case):.0%}."
                       if max(1 - c['busy'] / c['total'], 1 - t['busy'] / t['total']) < 0.15 else
                       "The cores were not busy in both, so the ratio is not these costs'."))
        cpu = get(backend, "login_cpu") if case == "login" else None
        if cpu and cpu.get("total") and ceil_rps:
            # Argon2's ceiling has every core; the logins' hashing threads have what the load tool,
            # the database and the request threads leave them. Per core-second they were given:
            share = cpu["hashing"] / cpu["total"]
            per_core = ratio(r["rps"], ceil_rps * share)
            login_notes.append(
                f"- {backend}: the hashing threads had {share:.0%} of the machine's CPU time during the login case; "
                f"the rest of the server {cpu['server_other'] / cpu['total']:.0%}, everything else (wrk, the database) "
                f"{(cpu['busy'] - cpu['hashing'] - cpu['server_other']) / cpu['total']:.0%}, idle "
                f"{1 - cpu['busy'] / cpu['total']:.0%}. For the CPU time it had, login ran at {per_core:.0%} of "
                f"Argon2's rate: " + ("the gap to the ceiling is the cores this machine's load tool and database take, "
                "not time the server loses." if per_core >= 0.9 else "the server loses time of its own, beyond the cores it was given."))
    if db:
        table.append((backend, "database ceiling: the refresh transaction on the store", {"rps": db["ops_per_s"], "p50_ms": db["p50_ms"], "p99_ms": db["p99_ms"]}, "", None))

    # what a DPoP proof costs, side by side with Bearer: a signature check and one write per call
    for plain_case, dpop_case, what in (("me", "me_dpop", "GET /v1/me"), ("refresh_native_rotated", "refresh_native_rotated_dpop", "refresh rotated")):
        plain, bound = get(backend, plain_case), get(backend, dpop_case)
        if plain and bound:
            table.append((backend, f"DPoP against Bearer: {what}", bound,
                          f"{ratio(bound['rps'], plain['rps']):.0%} of Bearer's {plain['rps']:,.0f}/s; p50 {bound['p50_ms']:.2f} ms vs {plain['p50_ms']:.2f} ms; "
                          f"{bound['non_2xx_or_errors']:,} refused", None))

    rotated = get(backend, "refresh_native_rotated")
    if backend == "sqlite" and rotated:
        q = rotated["p99_ms"] / rotated["p50_ms"] if rotated["p50_ms"] else 0
        checks.append(("SQLite refresh p99 ≤ 5× its p50", backend, f"{q:.1f}×", q <= 5))
    during = get(backend, "refresh_during_flood")
    flood_row = get(backend, "login_flood")
    control = get(backend, "refresh_during_health_flood")
    control_flood = get(backend, "health_flood")
    if control and control_flood:
        table.append((backend, f"control flood: GET /health/live ({flood} connections)", control_flood, "", None))
        table.append((backend, "refresh rotated during the control flood", control, "", None))
    paced = get(backend, "refresh_during_paced_flood")
    paced_flood = get(backend, "login_flood_paced")
    # unloaded: the same case just before the flood, on tables of the same size
    unloaded = get(backend, "refresh_before_flood") or rotated
    if paced and paced_flood and unloaded:
        table.append((backend, "refresh rotated, just before the floods (unloaded)", unloaded, "", None))
        delay = os.environ.get("BENCH_FLOOD_DELAY_MS", "100")
        table.append((backend, f"login flood, paced ({flood} clients, {delay} ms between a client's logins)", paced_flood,
                      f"{paced_flood['non_2xx_or_errors']:,} answered 503", None))
        table.append((backend, "refresh rotated during the paced flood", paced, "", None))
        q = paced["p99_ms"] / unloaded["p99_ms"] if unloaded["p99_ms"] else 0
        checks.append((f"refresh p99 during a {flood}-client login flood ≤ 2× unloaded (just before it)", backend,
                       f"{q:.1f}× ({paced['p99_ms']:.1f} ms vs {unloaded['p99_ms']:.1f} ms)", q <= 2))
    if during and unloaded and flood_row:
        table.append((backend, f"login flood, unpaced ({flood} connections)", flood_row, f"{flood_row['non_2xx_or_errors']:,} answered 503 at once", None))
        table.append((backend, "refresh rotated during the unpaced flood", during, "", None))
        q = during["p99_ms"] / unloaded["p99_ms"] if unloaded["p99_ms"] else 0
        checks.append((f"refresh p99 during {flood} connections of unpaced logins (an HTTP flood) ≤ 2× unloaded", backend,
                       f"{q:.1f}× ({during['p99_ms']:.1f} ms vs {unloaded['p99_ms']:.1f} ms)", q <= 2))
        if control:
            q = during["p99_ms"] / control["p99_ms"] if control["p99_ms"] else 0
            checks.append(("refresh p99 during the unpaced login flood ≤ 2× during the control flood (what hashing adds)", backend,
                           f"{q:.1f}× ({during['p99_ms']:.1f} ms vs {control['p99_ms']:.1f} ms)", q <= 2))
    rss = get(backend, "rss")
    if rss:
        samples = rss.get("samples", [])
        peak = max((s[1] for s in samples), default=0)
        steady = rss["steady_mib"]
        anon = rss.get("steady_anon_mib")
        split = f" ({anon:.1f} MiB anonymous, {steady - anon:.1f} MiB the binary's and libraries' file pages)" if anon else ""
        checks.append(("steady RSS ≤ 16 MiB", backend, f"{steady:.1f} MiB{split}", steady <= 16))
        pool = (os.cpu_count() or 1) * 19  # one 19 MiB Argon2 buffer per concurrent hash (one per core)
        checks.append((f"peak RSS during a login flood ≤ steady + one Argon2 buffer per core ({pool} MiB)", backend,
                       f"{peak:.0f} MiB (steady {steady:.1f} MiB)", peak <= steady + pool))
        back = rss.get("after_idle_mib", rss["after_flood_mib"])
        before = rss.get("before_flood_mib", rss["steady_mib"])
        # What a flood may leave: actix-web keeps up to 128 requests' heads and objects per worker
        # for reuse (about 11 KB each, 2 workers here: 2.8 MB), filled once by the flood's
        # requests in flight, and the allocator pages they pin. Nothing else: the hash pool and
        # every arena's freed pages go back once the hashing threads idle.
        pools = 6
        checks.append((f"RSS back to its pre-flood size after the flood (+ actix-web's bounded request pools, ≤ {pools} MiB)", backend,
                       f"{back:.1f} MiB a minute after, {rss['after_flood_mib']:.1f} MiB 3 s after, {before:.1f} MiB before",
                       back <= before + pools))
        if "after_paced_flood_mib" in rss:
            first, second = rss["after_paced_flood_mib"], rss["after_flood_mib"]
            checks.append(("a second flood leaves RSS where the first left it (± 1 MiB)", backend,
                           f"{first:.1f} MiB after the first, {second:.1f} MiB after the second", abs(second - first) <= 1))

lines = [
    "# Tessera benchmark",
    "",
    f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make bench`: {seconds} s per case, {conns} connections, "
    f"release build, wrk for load. Machine: {machine()}; the load tool shares the cores with the server. "
    "Postgres is a throwaway local cluster (fsync off) unless `DATABASE_URL` names one.",
    "",
    "Every figure is a ratio to a ceiling measured in the same run: the same server's `GET /health/live` "
    "for HTTP, the refresh's own database transaction run straight on the store with the same driver "
    "(sqlx) and connection count for the database, and the Argon2 implementation at the configured "
    "parameters on every core, without HTTP, for login. A case with an HTTP or database ceiling is held "
    "to that ceiling measured around it: for half the case's time just before it and half just after. "
    "A stateless case, and the native rotated refresh, alternate with their ceiling a second at a time "
    "instead. The ratio to the run's first ceiling is beside it.",
    "",
    "## Targets",
    "",
    "| target | backend | measured | met |",
    "|---|---|---|---|",
]
for target, backend, measured, ok in checks:
    lines.append(f"| {target} | {backend} | {measured} | {'yes' if ok else '**no**'} |")
lines += [
    "",
    "## Cases",
    "",
    "| backend | case | req/s | p50 ms | p99 ms | against its ceiling |",
    "|---|---|---|---|---|---|",
]
for backend, label, r, note, _ in table:
    lines.append(f"| {backend} | {label} | {r.get('rps', 0):,.0f} | {r.get('p50_ms', 0):.2f} | {r.get('p99_ms', 0):.2f} | {note} |")
if argon:
    lines += ["", f"Argon2 ceiling: {argon['ops_per_s']:.1f} hashes/s on {argon['threads']} threads "
              f"(m={argon['memory_kib']} KiB, t={argon['iterations']}, p={argon['parallelism']}), the faster of:"]
    lines += ["", f"- the `argon2` crate Tessera uses, one thread per core: {argon_rust['ops_per_s']:.1f}/s" if argon_rust else ""]
    if argon_c:
        lines += [f"- the C reference implementation (Debian's `argon2`), one process per core: {argon_c['ops_per_s']:.1f}/s"]
    else:
        lines += ["- (the C reference, Debian's `argon2`, is not installed here and was not measured)"]
layout = get("all", "code_layout")
if layout:
    applied = layout["found"] and layout["in_order"] >= 0.9
    lines += ["", f"Code layout: {layout['found']:,} of the {layout['listed']:,} functions `crates/cli/symbol-order.txt` lists are in "
              f"this binary, " + (f"placed together in its order across {layout['span_mib']:.1f} MiB of the {layout['text_mib']:.1f} MiB "
              "of code (see Development, The release binary's layout)." if applied else
              "not in its order: the order is not applied to this build (a debug build, or another linker), and steady RSS "
              "holds most of the code.")]
if login_notes:
    lines += ["", "Login against Argon2 on every core, and where the cores went:", ""] + login_notes
if rotation_notes:
    lines += ["", "Native rotated refresh against its database ceiling, in the machine's CPU time per operation "
              "(the alternated seconds):", ""] + rotation_notes
lines += ["", "![ratios to the ceilings](chart.png)", ""]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "report.md"), "w").write("\n".join(lines))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(11, 4.8), dpi=100)
labels = [c[0] for c in chart]
ax.bar(range(len(chart)), [c[1] * 100 for c in chart], color="#4a7ab5")
for i, (_, _, target) in enumerate(chart):
    if target is not None:
        ax.plot([i - 0.4, i + 0.4], [target * 100] * 2, color="#c0392b", linewidth=2)
ax.set_xticks(range(len(chart)))
ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
ax.set_ylabel("% of the ceiling measured in the same run")
ax.set_title("Tessera against its ceilings (red: target)")
fig.tight_layout()
fig.savefig(os.path.join(out, "chart.png"))
