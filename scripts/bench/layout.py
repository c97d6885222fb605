"""How the binary's code is laid out against crates/cli/symbol-order.txt, as one JSON line:
how many of the listed functions the binary has, whether they sit in the list's order, and how
much of the text they span. Usage: nm --defined-only BINARY | layout.py ORDER_FILE"""
import json
import sys

listed = [l.strip() for l in open(sys.argv[1]) if l.strip()]
addr, text_lo, text_hi = {}, None, 0
for line in sys.stdin:
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tTwW":
        a = int(parts[0], 16)
        addr.setdefault(parts[2], a)
        text_lo = a if text_lo is None else min(text_lo, a)
        text_hi = max(text_hi, a)
found = [addr[n] for n in listed if n in addr]
ascending = sum(1 for a, b in zip(found, found[1:]) if b > a)
print(json.dumps({
    "listed": len(listed),
    "found": len(found),
    "in_order": ascending / (len(found) - 1) if len(found) > 1 else 0.0,
    "span_mib": (max(found) - min(found)) / 2**20 if found else 0.0,
    "text_mib": (text_hi - (text_lo or 0)) / 2**20,
}))
