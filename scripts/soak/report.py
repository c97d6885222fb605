"""Writes the soak's report (soak.md) and chart (soak.png) from scripts/soak.sh's results.

    report.py RESULTS.jsonl OUT_DIR MINUTES METHODS SLOW PHASE_SECONDS
"""

import datetime
import json
import os
import platform
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results_path, out, minutes, methods, slow, phase = sys.argv[1:7]
rows = [json.loads(l) for l in open(results_path) if l.strip()]
by = {(r["backend"], r["phase"]): r for r in rows}
backends = [b for b in ("postgres", "sqlite") if (b, "soak") in by]

MIB = 1024.0
targets = []  # (bound, backend, measured, held)


def pct(values, p):
    values = sorted(values)
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fivexx(statuses):
    return sum(n for k, n in statuses.items() if k.rsplit(":", 1)[-1].startswith("5"))


def check(bound, backend, measured, held):
    targets.append((bound, backend, measured, held))


def median(values):
    return pct(values, 50)


phase_lines = []
for b in backends:
    m = by.get((b, "methods"))
    if m:
        grew = (m["rss_after_kib"] - m["rss_before_kib"]) / MIB
        check(f"RSS after {int(methods):,} requests with invented methods within 2 MiB of before", b,
              f"{grew:+.2f} MiB ({m['rss_before_kib'] / MIB:.1f} → {m['rss_after_kib'] / MIB:.1f} MiB)", abs(grew) <= 2)
        added = m["series_after"] - m["series_before"]
        check("metrics series added by them ≤ 50 (one `other` method's set at most)", b,
              f"{added:+d} ({m['series_before']} → {m['series_after']})", added <= 50)
        w = m["wrk"]
        check("invented methods all answered, none with a 5xx", b, f"{fivexx(w['statuses'])} × 5xx, {w['statuses'].get('0', 0)} unanswered of {w['requests']:,}",
              fivexx(w["statuses"]) == 0 and w["statuses"].get("0", 0) == 0)
        phase_lines.append(f"- {b}: {w['requests']:,} invented-method requests at {w['requests'] / max(w['seconds'], 1e-9):,.0f}/s, "
                           f"answered {json.dumps(w['statuses'])}.")
    s = by.get((b, "slow"))
    if s:
        health = [p for p in s["probes"] if p["kind"] == "health"]
        ok = [p["ms"] for p in health if p["status"] == 200]
        failed = len(health) - len(ok)
        check(f"GET /health/live p99 while {int(slow):,} slow-body connections are open < 50 ms", b,
              f"{pct(ok, 99):.1f} ms (p50 {pct(ok, 50):.1f} ms, {len(health):,} probes, {failed} failed)", pct(ok, 99) < 50 and failed == 0)
        check("no \"Too many open files\" in the server log", b, f"{s['too_many_open_files']} lines", int(s["too_many_open_files"]) == 0)
        life = s.get("lifetime_max_s")
        check("a slow body is cut within the body deadline (10 s) + 2 s", b,
              f"max {life:.1f} s, median {s.get('lifetime_median_s', 0):.1f} s" if life else "none cut", life is not None and life <= 12)
        phase_lines.append(f"- {b}: {s['opened']:,} slow connections opened over {phase} s, {s['max_open']:,} open at once at most, "
                           f"{s['cut']:,} cut by the server, {s['connect_failures']} refused connects.")
    f = by.get((b, "flood"))
    if f:
        logins = [p for p in f["probes"] if p["kind"] == "login"]
        statuses = {}
        for p in logins:
            statuses[p["status"]] = statuses.get(p["status"], 0) + 1
        check("real logins from other addresses during a registration flood from one address: no 503", b,
              f"{statuses.get(503, 0)} × 503 of {len(logins)} ({json.dumps(statuses)}; p99 {pct([p['ms'] for p in logins], 99):.0f} ms)",
              statuses.get(503, 0) == 0 and statuses.get(200, 0) == len(logins))
        phase_lines.append(f"- {b}: the registration flood sent {f['wrk']['requests']:,} requests at {f['wrk']['rps']:,.0f}/s, "
                           f"answered {json.dumps(f['wrk']['statuses'])}.")

soak_lines = []
for b in backends:
    d = by[(b, "soak")]
    samples = d["samples"]
    t0 = samples[0][0] if samples else 0
    n = len(samples)
    q = max(n // 4, 1)
    rss = [s[1] / MIB for s in samples]
    fds = [s[2] for s in samples]
    db = [s[3] / MIB / MIB for s in samples]
    ser = [s[4] for s in samples]
    second, last = rss[q:2 * q] or rss, rss[-q:]
    check("RSS does not grow: median of the last quarter ≤ median of the second + 2 MiB", b,
          f"{median(last):.1f} MiB vs {median(second):.1f} MiB (max {max(rss):.1f})", median(last) <= median(second) + 2)
    check("open descriptors do not grow: max of the last quarter ≤ max of the second + 10 %", b,
          f"{max(fds[-q:])} vs {max(fds[q:2 * q] or fds)}", max(fds[-q:]) <= max(fds[q:2 * q] or fds) * 1.1)
    check("metrics series do not grow after the first quarter of the soak", b, f"{ser[-1]} at the end, {min(ser[q:] or ser)}–{max(ser[q:] or ser)} after the first quarter",
          max(ser[q:] or ser) == min(ser[q:] or ser))
    st = d["sessions"]["statuses"]
    writes = st.get("login:200", 0) + st.get("refresh:200", 0) + d["registrations"]["statuses"].get("201", 0)
    grown = (samples[-1][3] - samples[0][3]) if samples else 0
    per = grown / writes if writes else 0
    check("the database grows only with accepted writes: ≤ 4 KiB per login, rotation or registration", b,
          f"{per:,.0f} bytes per write ({grown / MIB / MIB:+.1f} MiB for {writes:,} writes)", per <= 4096)
    health = [p for p in d["probes"] if p["kind"] == "health"]
    windows = {}
    for p in health:
        windows.setdefault(int((p["t"] - t0) // 30), []).append(p["ms"] if p["status"] == 200 else 10_000)
    worst = max((pct(v, 99) for v in windows.values()), default=0)
    check("GET /health/live p99 in every 30 s window < 50 ms", b, f"worst window {worst:.1f} ms", worst < 50)
    logins = [p for p in d["probes"] if p["kind"] == "login"]
    bad = [p for p in logins if p["status"] != 200]
    check("real logins from other addresses all succeed", b, f"{len(logins) - len(bad)} of {len(logins)} (p99 {pct([p['ms'] for p in logins], 99):.0f} ms)", not bad)
    errors = sum(fivexx(d[k]["statuses"]) for k in ("sessions", "reads", "registrations", "invented"))
    check("no 5xx answer in the mixed load", b, f"{errors}", errors == 0)
    check("no ERROR or \"Too many open files\" line in the server log", b, f"{d['error_lines']} ERROR, {d['too_many_open_files']} descriptor",
          d["error_lines"] == 0 and d["too_many_open_files"] == 0)
    soak_lines.append(f"| {b} | sessions (login, 3 refreshes, /v1/me, logout) | {d['sessions']['rps']:,.0f} | {d['sessions']['p99_ms']:.1f} | {json.dumps(st)} |")
    for k, what in (("reads", "GET /v1/me"), ("registrations", "registration flood, one address"), ("invented", "invented methods")):
        p99 = f"{d[k]['p99_ms']:.1f}" if d[k]["p99_ms"] else ""
        soak_lines.append(f"| {b} | {what} | {d[k]['rps']:,.0f} | {p99} | {json.dumps(d[k]['statuses'])} |")
    sl = d["slow"]
    soak_lines.append(f"| {b} | slow-body clients ({sl['slow']:,} at once) | {sl['opened'] / max(samples[-1][0] - t0, 1) if samples else 0:,.1f} new/s | "
                      f"| {sl['cut']:,} cut, max life {sl.get('lifetime_max_s', 0):.1f} s |")

fig, axes = plt.subplots(4, 1, figsize=(9, 11), sharex=True)
for b in backends:
    d = by[(b, "soak")]
    samples = d["samples"]
    if not samples:
        continue
    t0 = samples[0][0]
    t = [(s[0] - t0) / 60 for s in samples]
    axes[0].plot(t, [s[1] / MIB for s in samples], label=b)
    axes[1].plot(t, [s[2] for s in samples], label=b)
    axes[2].plot(t, [s[3] / MIB / MIB for s in samples], label=b)
    health = sorted((p for p in d["probes"] if p["kind"] == "health"), key=lambda p: p["t"])
    windows = {}
    for p in health:
        windows.setdefault(int((p["t"] - t0) // 10), []).append(p["ms"])
    axes[3].plot([k * 10 / 60 for k in sorted(windows)], [pct(windows[k], 99) for k in sorted(windows)], label=b)
for ax, title in zip(axes, ("RSS (MiB)", "open descriptors", "database size (MiB)", "GET /health/live p99 per 10 s (ms)")):
    ax.set_ylabel(title)
    ax.grid(alpha=0.3)
    ax.legend()
axes[3].axhline(50, color="red", linestyle="--", linewidth=0.8)
axes[3].set_xlabel("minutes into the soak")
fig.suptitle("Tessera soak: mixed load with attacks")
fig.tight_layout()
fig.savefig(os.path.join(out, "soak.png"), dpi=80)

held = all(t[3] for t in targets)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [
    "# Tessera soak",
    "",
    f"Run {now} by `make soak`: {minutes} minutes of mixed load per backend after three attack phases of {phase} s, release build, "
    f"wrk and a Python driver for load, on {os.cpu_count()} logical CPUs ({platform.system()} {platform.release()}) shared with the load. "
    "The server sits behind a trusted proxy address, so load comes from many client addresses through `X-Forwarded-For`.",
    "",
    f"**Every bound held: {'yes' if held else 'no'}.**",
    "",
    "## Bounds",
    "",
    "| bound | backend | measured | held |",
    "|---|---|---|---|",
]
lines += [f"| {bound} | {b} | {measured} | {'yes' if ok else '**no**'} |" for bound, b, measured, ok in targets]
lines += ["", "## The attack phases", "", *phase_lines, "", "## The mixed load", "",
          "| backend | load | req/s | p99 ms | answers |", "|---|---|---|---|---|", *soak_lines, "",
          "![RSS, descriptors, database size and health p99 over the soak](soak.png)", ""]
open(os.path.join(out, "soak.md"), "w").write("\n".join(lines))
