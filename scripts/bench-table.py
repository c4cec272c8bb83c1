#!/usr/bin/env python3
"""Prints markdown tables from bench/results/*.json (used to write BENCHMARKS.md)."""
import glob, json, os

def load(p):
    with open(p) as f:
        return json.load(f)

def lat(r, k):
    s = r["latency_ms"].get(k)
    return f'{s["p50"]:.1f} / {s["p95"]:.1f} / {s["p99"]:.1f} / {s["max"]:.0f}' if s and s["n"] else "-"

def procs(r):
    return ", ".join(f'{p["name"]} {p["cpu_cores"]:.2f}' for p in r["processes"] if p["cpu_cores"] >= 0.01)

rows = []
for p in sorted(glob.glob("bench/results/chat-*.json")):
    r = load(p); m = r["metrics"]
    ok = "ok" if r["ok"] else "FAIL: " + "; ".join(k for k, v in r["checks"].items() if v.startswith("FAIL"))
    rows.append((m["offered_msgs_per_s"], r["label"] or os.path.basename(p), m, r, ok))
rows.sort(key=lambda x: (x[1].startswith("2node"), x[0]))
print("| run | clients | offered msg/s | accepted msg/s | deliveries/s | send→deliver ms p50/p95/p99/max | send→ack ms p50/p95/p99/max | loss/dup/PG checks |")
print("|---|---|---|---|---|---|---|---|")
for off, label, m, r, ok in rows:
    span = m.get("ack_span_s") or r["params"]["duration_s"]
    print(f'| {label} | {m["clients"]:.0f} | {off:.0f} | {m["accepted_msgs_per_s"]:.0f} | {m["deliveries"] / span:.0f} | {lat(r,"send_to_deliver")} | {lat(r,"send_to_ack")} | {ok} |')
print()
print("CPU cores used during the load phase, per process:")
print()
for off, label, m, r, ok in rows:
    print(f"- {label}: {procs(r)}")
for name in ["signup", "history", "idle", "reconnect", "baseline"]:
    p = f"bench/results/{name}.json"
    if os.path.exists(p):
        r = load(p)
        print(f"\n{name}: metrics {json.dumps({k: round(v, 1) for k, v in r['metrics'].items()})}")
        print(f"  latency {json.dumps(r['latency_ms'])}")
        print(f"  checks {json.dumps(r['checks'])}")
        print(f"  processes: {procs(r)}")
