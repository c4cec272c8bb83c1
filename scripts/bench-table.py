#!/usr/bin/env python3
"""Prints markdown tables from bench/results/*.json (used to write BENCHMARKS.md).

`bench-table.py ab PREFIX` prints the A/B table of scripts/bench-ab.sh's runs
with that PREFIX instead."""
import glob, json, os, re, sys

def load(p):
    with open(p) as f:
        return json.load(f)

def lat(r, k):
    s = r["latency_ms"].get(k)
    return f'{s["p50"]:.1f} / {s["p95"]:.1f} / {s["p99"]:.1f} / {s["max"]:.0f}' if s and s["n"] else "-"

def procs(r):
    return ", ".join(f'{p["name"]} {p["cpu_cores"]:.2f}' for p in r["processes"] if p["cpu_cores"] >= 0.01)

def ab(prefix):
    """One row per run of bench-ab.sh with PREFIX, in the order they ran."""
    names = {"chatflow api": "api", "chatflow worker": "worker", "temporal dev server": "Temporal",
             "postgres (all backends)": "PG", "redis": "Redis", "bench (load generator)": "gen"}
    print("| run | offered | accepted | deliver p50 / p95 / p99 | ack p99 | deliveries by ms (0.5,1] / (1,2] / (2,4] / (4,8] / (8,16] / (16,32] % "
          "| frames per write | send script µs per call | cores api / worker / Temporal / PG / Redis / gen | server CPU µs per accepted msg | checks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    runs = sorted(glob.glob(f"bench/results/ab-{prefix}[AB]-*.json"), key=os.path.getmtime)
    for p in runs:
        r = load(p); m = r["metrics"]; d = r["latency_ms"]["send_to_deliver"]; a = r["latency_ms"]["send_to_ack"]
        h = d.get("hist") or []
        share = " / ".join(f"{100 * h[i] / d['n']:.0f}" for i in range(2, 8)) if h and d["n"] else "-"
        cores = {names.get(x["name"]): x["cpu_cores"] for x in r["processes"]}
        c = " / ".join(f"{cores[k]:.2f}" if k in cores else "–" for k in names.values())
        fpw = script = "-"
        mp = p[:-5] + ".metrics"
        if os.path.exists(mp):
            text = open(mp).read()
            v = dict(re.findall(r"^(\S+) (\S+)$", text, re.M))
            if float(v.get("chatflow_ws_writes_total", 0)) > 0:
                fpw = f'{float(v["chatflow_ws_frames_out_total"]) / float(v["chatflow_ws_writes_total"]):.2f}'
            e = re.search(r"^cmdstat_evalsha:.*usec_per_call=([0-9.]+)", text, re.M)
            if e:
                script = f"{float(e.group(1)):.1f}"
        server = sum(x["cpu_cores"] for x in r["processes"] if x["name"] != "bench (load generator)")
        per_msg = f'{1e6 * server / m["accepted_msgs_per_s"]:.0f}' if m["accepted_msgs_per_s"] else "-"
        ok = "ok" if r["ok"] else "FAIL " + ", ".join(k for k, v in r["checks"].items() if v.startswith("FAIL"))
        rc = r["latency_ms"].get("reconnect_to_synced")
        if rc:  # SCENARIO=reconnect: the time from the reconnect wave to each client's last missed seq
            ok = f'reconnect→synced p50 {rc["p50"]:.0f} / p99 {rc["p99"]:.0f} / max {rc["max"]:.0f} ms, {m.get("reconnect_recovered", 0):.0f} of {m.get("reconnect_clients", 0):.0f}; {ok}'
        print(f'| {r["label"]} | {m["offered_msgs_per_s"]:.0f} | {m["accepted_msgs_per_s"]:.0f} | {d["p50"]:.1f} / {d["p95"]:.1f} / {d["p99"]:.0f} '
              f'| {a["p99"]:.0f} | {share} | {fpw} | {script} | {c} | {per_msg} | {ok} |')

if len(sys.argv) > 2 and sys.argv[1] == "ab":
    ab(sys.argv[2])
    sys.exit(0)

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
