"""CPU time so far, in clock ticks, as one JSON line: the server's hashing threads
(`argon2-*`), the rest of the server, and the whole machine (busy and in all), from /proc.
Usage: cpu.py SERVER_PID. Two snapshots around a case say where the machine's cores went."""
import json
import os
import sys

pid = sys.argv[1]
hashing = other = 0
for tid in os.listdir(f"/proc/{pid}/task"):
    try:
        stat = open(f"/proc/{pid}/task/{tid}/stat").read()
    except OSError:
        continue
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    if comm.startswith("argon2-"):
        hashing += ticks
    else:
        other += ticks
cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
idle = cpu[3] + cpu[4]  # idle, iowait
print(json.dumps({"hashing": hashing, "server_other": other, "busy": sum(cpu[:8]) - idle, "total": sum(cpu[:8])}))
