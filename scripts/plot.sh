#!/usr/bin/env bash
# Plots latency against offered load from bench/results/chat-1node-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gnuplot >/dev/null || { sudo_=""; [[ $(id -u) -eq 0 ]] || sudo_=sudo; $sudo_ apt-get install -y -q gnuplot-nox >/dev/null; }
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
