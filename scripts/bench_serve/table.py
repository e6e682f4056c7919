"""Prints the markdown table of a bench-serve results.jsonl, and the Rust ÷ other server
throughput ratios per connection count.

usage: table.py RESULTS_JSONL
"""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def ms(us): return f"{us / 1000:.2f}"
soak = any(r["mode"] == "soak" for r in rows)
hdr = ["server", "workers", "connections", "req/s", "p50 ms", "p99 ms", "max ms", "requests",
       "non-2xx (>399)", "socket errors", "load (1 min)"]
if soak:
    hdr += ["seconds", "RSS first MB", "RSS min MB", "RSS max MB", "RSS last MB"]
print("| " + " | ".join(hdr) + " |")
print("|---|---:|" + "---:|" * (len(hdr) - 2))
for r in rows:
    sock = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    lat = [ms(r[k]) if r["requests"] else "— (no response)" for k in ("p50_us", "p99_us", "max_us")]
    cells = [r["server"], r["workers"], str(r["connections"]), f"{r['rps']:.1f}" if r["rps"] >= 10 else f"{r['rps']:.3f}", *lat, str(r["requests"]), str(r["status_errors"]), str(sock),
             f"{r['load1']:.2f}"]
    if soak:
        cells += [f"{r['duration_s']:.0f}"] + [f"{r[k]:.1f}" for k in ("rss_first_mb", "rss_min_mb", "rss_max_mb", "rss_last_mb")]
    print("| " + " | ".join(cells) + " |")
rust = {r["connections"]: r for r in rows if r["server"] == "rust"}
for label in sorted({r["server"] for r in rows if r["server"] != "rust"}):
    best = {}
    for r in rows:
        if r["server"] == label and (r["connections"] not in best or r["rps"] > best[r["connections"]]["rps"]):
            best[r["connections"]] = r
    common = sorted(set(rust) & set(best))
    if common:
        print()
        print(f"| connections | Rust ÷ {label} req/s (its best worker count) | Rust p99 ms | {label} p99 ms |")
        print("|---:|---:|---:|---:|")
        for c in common:
            ratio = "∞" if best[c]["rps"] == 0 else f"{rust[c]['rps'] / best[c]['rps']:.1f}×"
            print(f"| {c} | {ratio} ({best[c]['workers']} workers) | {ms(rust[c]['p99_us'])} | {ms(best[c]['p99_us'])} |")
