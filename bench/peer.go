package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The peer table: Centrifugo and chatflow under the same generator, same
// rates and durations, one row per offered rate, with chatflow/Centrifugo
// ratios. scripts/bench-peer.sh writes the results it reads:
// DIR/centrifugo-<rate>.json, DIR/chatflow-<rate>.json and, when measured,
// DIR/idle-centrifugo.json and DIR/idle-chatflow.json.

// PeerPair is one offered rate measured on both systems.
type PeerPair struct {
	Offered          float64
	Centrifugo, Chat *Result
}

// genName is how procWatch names the load generator itself.
const genName = "bench (load generator)"

// ServerCores sums the CPU cores of the processes that make up the system
// under test: Centrifugo and Redis for Centrifugo; for chatflow every watched
// process but the generator (api, worker, kafka broker, Temporal, Postgres, Redis).
func ServerCores(r *Result) float64 {
	cf := r.Params["target"] == "centrifugo"
	var sum float64
	for _, p := range r.Processes {
		switch {
		case p.Name == genName, strings.HasPrefix(p.Name, "chatflow bench"):
		case cf && (p.Name == "centrifugo" || p.Name == "redis"):
			sum += p.CPUCores
		case !cf && p.Name != "centrifugo":
			sum += p.CPUCores
		}
	}
	return sum
}

// GeneratorCores is the load generator's own CPU.
func GeneratorCores(r *Result) float64 {
	for _, p := range r.Processes {
		if p.Name == genName {
			return p.CPUCores
		}
	}
	return 0
}

// ratio formats b/a as "0.55×", or "–" when a is zero.
func ratio(a, b float64) string {
	if a == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", b/a)
}

// ms formats a latency: one decimal under 100 ms, none above.
func ms(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// checks summarizes a run's checks and refused sends.
func checks(r *Result) string {
	var failed []string
	for k, v := range r.Checks {
		if strings.HasPrefix(v, "FAIL") {
			failed = append(failed, k)
		}
	}
	sort.Strings(failed)
	s := "ok"
	if len(failed) > 0 {
		s = "FAIL " + strings.Join(failed, ",")
	}
	if n := r.Metrics["error_frames"]; n > 0 {
		s += fmt.Sprintf(" (%.0f sends refused)", n)
	}
	return s
}

// PeerTable renders the side-by-side markdown table. Ratios are
// chatflow ÷ Centrifugo: above 1 is better for accepted, below 1 is better
// for latency and cores.
func PeerTable(pairs []PeerPair, idleCentrifugo, idleChat *Result) string {
	var b strings.Builder
	b.WriteString("| offered msg/s | accepted msg/s Centrifugo / chatflow | ratio | deliver p99 ms Centrifugo / chatflow | ratio | ack p99 ms Centrifugo (publish reply) / chatflow (durable) | ratio | server cores Centrifugo+Redis / chatflow (all processes) | ratio | generator cores Centrifugo / chatflow | checks Centrifugo / chatflow |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range pairs {
		c, f := p.Centrifugo, p.Chat
		ca, fa := c.Metrics["accepted_msgs_per_s"], f.Metrics["accepted_msgs_per_s"]
		cd, fd := c.Latency["send_to_deliver"].P99, f.Latency["send_to_deliver"].P99
		ck, fk := c.Latency["send_to_ack"].P99, f.Latency["send_to_ack"].P99
		cs, fs := ServerCores(c), ServerCores(f)
		fmt.Fprintf(&b, "| %s | %s / %s | %s | %s / %s | %s | %s / %s | %s | %.2f / %.2f | %s | %.2f / %.2f | %s / %s |\n",
			thousands(p.Offered), thousands(ca), thousands(fa), ratio(ca, fa),
			ms(cd), ms(fd), ratio(cd, fd), ms(ck), ms(fk), ratio(ck, fk),
			cs, fs, ratio(cs, fs), GeneratorCores(c), GeneratorCores(f), checks(c), checks(f))
	}
	if idleCentrifugo != nil && idleChat != nil {
		ci, fi := idleCentrifugo.Metrics["api_kb_per_idle_connection"], idleChat.Metrics["api_kb_per_idle_connection"]
		fmt.Fprintf(&b, "\nIdle WebSocket memory (server RSS growth ÷ connections): Centrifugo %.1f KB over %s connections (each connected and subscribed to a room channel), chatflow %.1f KB over %s connections; ratio %s.\n",
			ci, thousands(idleCentrifugo.Metrics["idle_connections"]), fi, thousands(idleChat.Metrics["idle_connections"]), ratio(ci, fi))
	}
	return b.String()
}

// thousands formats a rounded number with comma separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// LoadPeerResults reads a bench-peer results directory and pairs the runs by
// offered rate (a rate measured on one system only is left out).
func LoadPeerResults(dir string) (pairs []PeerPair, idleCentrifugo, idleChat *Result, err error) {
	load := func(p string) (*Result, error) {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return &r, nil
	}
	byRate := map[float64]*PeerPair{}
	for _, sys := range []string{"centrifugo", "chatflow"} {
		files, _ := filepath.Glob(filepath.Join(dir, sys+"-*.json"))
		for _, f := range files {
			r, err := load(f)
			if err != nil {
				return nil, nil, nil, err
			}
			off := r.Metrics["offered_msgs_per_s"]
			p := byRate[off]
			if p == nil {
				p = &PeerPair{Offered: off}
				byRate[off] = p
			}
			if sys == "centrifugo" {
				p.Centrifugo = r
			} else {
				p.Chat = r
			}
		}
	}
	for _, p := range byRate {
		if p.Centrifugo != nil && p.Chat != nil {
			pairs = append(pairs, *p)
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Offered < pairs[j].Offered })
	idleCentrifugo, _ = load(filepath.Join(dir, "idle-centrifugo.json"))
	idleChat, _ = load(filepath.Join(dir, "idle-chatflow.json"))
	if len(pairs) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: no rate measured on both systems", dir)
	}
	return pairs, idleCentrifugo, idleChat, nil
}
