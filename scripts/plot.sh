#!/usr/bin/env bash
# Plots latency against offered load from bench/results/chat-1node-*.json,
# or with `peer [DIR]` both systems of a scripts/bench-peer.sh run
# (DIR, default bench/results/peer) into DIR/peer-curve.png.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gnuplot >/dev/null || { sudo_=""; [[ $(id -u) -eq 0 ]] || sudo_=sudo; $sudo_ apt-get install -y -q gnuplot-nox >/dev/null; }
if [[ ${1:-} == peer ]]; then
  dir=${2:-bench/results/peer}
  for sys in centrifugo chatflow; do
    # offered accepted deliver-p50 deliver-p99 ack-p50 ack-p99, one line per rate
    python3 - "$dir" "$sys" >"$dir/.plot-$sys.dat" <<'PY'
import glob, json, sys
rows = []
for f in glob.glob(f"{sys.argv[1]}/{sys.argv[2]}-*.json"):
    r = json.load(open(f)); m = r["metrics"]; l = r["latency_ms"]
    if l.get("send_to_deliver", {}).get("n"):
        rows.append((m["offered_msgs_per_s"], m["accepted_msgs_per_s"], l["send_to_deliver"]["p50"], l["send_to_deliver"]["p99"], l["send_to_ack"]["p50"], l["send_to_ack"]["p99"]))
for row in sorted(rows):
    print(*row)
PY
  done
  c="$dir/.plot-centrifugo.dat" f="$dir/.plot-chatflow.dat"
  gnuplot <<GP
set terminal pngcairo size 1000,560 enhanced font "DejaVu Sans,10"
set output "$dir/peer-curve.png"
set title "chatflow vs Centrifugo+Redis, same machine, same generator (rooms of 5)"
set xlabel "offered messages/s"
set ylabel "latency (ms, log scale)"
set logscale y
set y2label "accepted messages/s"
set y2tics
set y2range [0:*]
set key left top
set grid
plot "$c" u 1:3 w lp lw 2 lc rgb "#1f77b4" dt 2 t "Centrifugo deliver p50", \
     "$c" u 1:4 w lp lw 2 lc rgb "#1f77b4" t "Centrifugo deliver p99", \
     "$c" u 1:6 w lp lw 1 lc rgb "#17becf" t "Centrifugo publish reply p99", \
     "$f" u 1:3 w lp lw 2 lc rgb "#d62728" dt 2 t "chatflow deliver p50", \
     "$f" u 1:4 w lp lw 2 lc rgb "#d62728" t "chatflow deliver p99", \
     "$f" u 1:6 w lp lw 1 lc rgb "#ff7f0e" t "chatflow ack (durable) p99", \
     "$c" u 1:2 axes x1y2 w lp dt 3 lw 2 lc rgb "#1f77b4" t "Centrifugo accepted/s", \
     "$f" u 1:2 axes x1y2 w lp dt 3 lw 2 lc rgb "#d62728" t "chatflow accepted/s"
GP
  rm -f "$c" "$f"
  echo "wrote $dir/peer-curve.png"
  exit 0
fi
dat=$(mktemp)
for f in bench/results/chat-1node-*.json; do
  python3 - "$f" <<'PY'
import json,sys
r=json.load(open(sys.argv[1])); m=r["metrics"]; l=r["latency_ms"]
print(m["offered_msgs_per_s"], m["accepted_msgs_per_s"], l["send_to_deliver"]["p50"], l["send_to_deliver"]["p99"], l["send_to_ack"]["p50"], l["send_to_ack"]["p99"])
PY
done | sort -n >"$dat"
gnuplot <<GP
set terminal pngcairo size 900,520 enhanced font "DejaVu Sans,10"
set output "bench/results/latency-curve.png"
set title "chatflow on 2 cores: latency vs offered load (room size 5, 1 api node + 1 worker, all services local)"
set xlabel "offered messages/s"
set ylabel "latency (ms, log scale)"
set logscale y
set y2label "accepted messages/s"
set y2tics
set key left top
set grid
plot "$dat" u 1:3 w lp lw 2 t "send→deliver p50", \
     "$dat" u 1:4 w lp lw 2 t "send→deliver p99", \
     "$dat" u 1:5 w lp lw 2 t "send→ack p50", \
     "$dat" u 1:6 w lp lw 2 t "send→ack p99", \
     "$dat" u 1:2 axes x1y2 w lp dt 2 lw 2 t "accepted msgs/s"
GP
rm -f "$dat"
echo "wrote bench/results/latency-curve.png"
