package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestCentrifugoConfigRender(t *testing.T) {
	raw, err := CentrifugoConfig{Port: 18000, RedisAddr: "127.0.0.1:16379", RedisDB: 2, HMACSecret: "s3cret", HistorySize: 100, HistoryTTL: 5 * time.Minute}.Render()
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTPServer struct {
			Port int `json:"port"`
		} `json:"http_server"`
		Engine struct {
			Type  string `json:"type"`
			Redis struct {
				Address []string `json:"address"`
				DB      int      `json:"db"`
				Prefix  string   `json:"prefix"`
			} `json:"redis"`
		} `json:"engine"`
		Client struct {
			Token struct {
				HMAC string `json:"hmac_secret_key"`
			} `json:"token"`
		} `json:"client"`
		Channel struct {
			Namespaces []map[string]any `json:"namespaces"`
		} `json:"channel"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPServer.Port != 18000 || cfg.Engine.Type != "redis" || len(cfg.Engine.Redis.Address) != 1 ||
		cfg.Engine.Redis.Address[0] != "redis://127.0.0.1:16379" || cfg.Engine.Redis.DB != 2 ||
		cfg.Engine.Redis.Prefix != "centrifugo-bench" || cfg.Client.Token.HMAC != "s3cret" {
		t.Fatalf("config: %s", raw)
	}
	if len(cfg.Channel.Namespaces) != 1 {
		t.Fatalf("namespaces: %v", cfg.Channel.Namespaces)
	}
	ns := cfg.Channel.Namespaces[0]
	for k, want := range map[string]any{"name": "chat", "history_size": 100.0, "history_ttl": "5m0s", "force_recovery": true,
		"allow_subscribe_for_client": true, "allow_publish_for_subscriber": true} {
		if ns[k] != want {
			t.Errorf("namespace %s = %v, want %v", k, ns[k], want)
		}
	}
	for _, bad := range []CentrifugoConfig{
		{RedisAddr: "r:1", HMACSecret: "s", HistorySize: 100, HistoryTTL: time.Minute},
		{Port: 1, HMACSecret: "s", HistorySize: 100, HistoryTTL: time.Minute},
		{Port: 1, RedisAddr: "r:1", HistorySize: 100, HistoryTTL: time.Minute},
		{Port: 1, RedisAddr: "r:1", HMACSecret: "s", HistoryTTL: time.Minute},
		{Port: 1, RedisAddr: "r:1", HMACSecret: "s", HistorySize: 100},
	} {
		if _, err := bad.Render(); err == nil {
			t.Errorf("%+v: rendered without an error", bad)
		}
	}
}

func TestCentrifugoToken(t *testing.T) {
	tok, err := centrifugoToken("k", "user-1")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("k"), nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatal(err)
	}
	if sub, _ := parsed.Claims.GetSubject(); sub != "user-1" {
		t.Fatalf("sub %q", sub)
	}
}

// TestCentrifugoFrame feeds the reader the frames Centrifugo sends: pushes
// and replies joined by newlines, a ping, an error.
func TestCentrifugoFrame(t *testing.T) {
	tg := &centrifugoTarget{run: "r"}
	c := &wsClient{idx: 7, room: "chat:r-1", seen: map[int64]int{}, sentAt: map[string]time.Time{}, acked: map[string]int64{}}
	sent := time.Now().Add(-3 * time.Millisecond)
	c.sentAt[tg.msgID(c, 0)] = sent
	var deliveries atomic.Int64
	ts := sent.UnixNano()
	frame := `{"id":3,"publish":{}}` + "\n" +
		`{"push":{"channel":"chat:r-1","pub":{"data":{"k":` + itoa(cfKey(7, 0)) + `,"body":"` + itoa(ts) + ` xxxx"},"offset":12}}}` + "\n" +
		`{"push":{"channel":"chat:r-1","pub":{"data":{"k":` + itoa(cfKey(2, 5)) + `,"body":"` + itoa(ts) + ` xxxx"},"offset":13}}}`
	if tg.frame(c, []byte(frame), sent.Add(4*time.Millisecond), &deliveries) {
		t.Fatal("no ping in this frame")
	}
	if deliveries.Load() != 2 || c.seen[cfKey(7, 0)] != 1 || c.seen[cfKey(2, 5)] != 1 {
		t.Fatalf("deliveries %d seen %v", deliveries.Load(), c.seen)
	}
	if c.acked[tg.msgID(c, 0)] != cfKey(7, 0) || len(c.ackLat) != 1 || c.ackLat[0] != 4*time.Millisecond {
		t.Fatalf("acked %v ackLat %v", c.acked, c.ackLat)
	}
	if len(c.delivLat) != 2 || c.delivLat[0] != 4*time.Millisecond {
		t.Fatalf("delivLat %v", c.delivLat)
	}
	if !tg.frame(c, []byte("{}"), time.Now(), &deliveries) {
		t.Fatal("a ping must be answered")
	}
	tg.frame(c, []byte(`{"id":9,"error":{"code":103,"message":"permission denied"}}`), time.Now(), &deliveries)
	if c.errors != 1 || len(c.acked) != 1 {
		t.Fatalf("errors %d acked %v", c.errors, c.acked)
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

func peerResult(target string, offered, accepted, deliverP99, ackP99 float64, procs map[string]float64) *Result {
	r := &Result{Params: map[string]any{"target": target}, Metrics: map[string]float64{"offered_msgs_per_s": offered, "accepted_msgs_per_s": accepted},
		Latency: map[string]Summary{"send_to_deliver": {N: 1, P99: deliverP99}, "send_to_ack": {N: 1, P99: ackP99}},
		Checks:  map[string]string{"delivery_loss": "ok: x"}, OK: true}
	for n, c := range procs {
		r.Processes = append(r.Processes, ProcStat{Name: n, CPUCores: c})
	}
	return r
}

func TestServerCores(t *testing.T) {
	procs := map[string]float64{genName: 0.5, "centrifugo": 0.3, "redis": 0.1, "chatflow api": 0.4, "chatflow worker": 0.2,
		"temporal dev server": 0.3, "postgres (all backends)": 0.1, "chatflow kafka-broker": 0.05, "chatflow bench": 0.7}
	if got := ServerCores(peerResult("centrifugo", 1, 1, 1, 1, procs)); !near(got, 0.4) {
		t.Errorf("centrifugo server cores %v, want 0.4", got)
	}
	if got := ServerCores(peerResult("chatflow", 1, 1, 1, 1, procs)); !near(got, 1.15) {
		t.Errorf("chatflow server cores %v, want 1.15", got)
	}
	if got := GeneratorCores(peerResult("chatflow", 1, 1, 1, 1, procs)); got != 0.5 {
		t.Errorf("generator cores %v", got)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestPeerTable(t *testing.T) {
	cf := peerResult("centrifugo", 10000, 9898, 416, 20, map[string]float64{"centrifugo": 1.0, "redis": 0.34, genName: 0.6})
	ch := peerResult("chatflow", 10000, 5431, 1738, 3313, map[string]float64{"chatflow api": 0.64, "redis": 0.18, "temporal dev server": 0.18, "chatflow worker": 0.29, genName: 0.7})
	ch.Metrics["error_frames"] = 84000
	ch.Checks["pg_persisted"] = "FAIL: 1 of 2"
	idleC := &Result{Metrics: map[string]float64{"api_kb_per_idle_connection": 46, "idle_connections": 10000}}
	idleF := &Result{Metrics: map[string]float64{"api_kb_per_idle_connection": 27.6, "idle_connections": 10000}}
	out := PeerTable([]PeerPair{{Offered: 10000, Centrifugo: cf, Chat: ch}}, idleC, idleF)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[1], "|---") {
		t.Fatalf("table:\n%s", out)
	}
	want := "| 10,000 | 9,898 / 5,431 | 0.55× | 416 / 1738 | 4.18× | 20.0 / 3313 | 165.65× | 1.34 / 1.29 | 0.96× | 0.60 / 0.70 | ok / FAIL pg_persisted (84000 sends refused) |"
	if lines[2] != want {
		t.Errorf("row\n got %s\nwant %s", lines[2], want)
	}
	if !strings.Contains(lines[4], "Centrifugo 46.0 KB over 10,000") || !strings.Contains(lines[4], "chatflow 27.6 KB") || !strings.Contains(lines[4], "ratio 0.60×") {
		t.Errorf("idle line: %s", lines[4])
	}
	if got := ratio(0, 5); got != "–" {
		t.Errorf("ratio over zero = %q", got)
	}
	if got := thousands(1234567); got != "1,234,567" {
		t.Errorf("thousands = %q", got)
	}
}

func TestLoadPeerResults(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r *Result) {
		b, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("centrifugo-2500.json", peerResult("centrifugo", 2500, 2475, 4.5, 2, nil))
	write("chatflow-2500.json", peerResult("chatflow", 2500, 2475, 50.5, 187, nil))
	write("centrifugo-1000.json", peerResult("centrifugo", 1000, 995, 1.9, 1, nil))
	write("chatflow-1000.json", peerResult("chatflow", 1000, 995, 12.1, 124, nil))
	write("centrifugo-5000.json", peerResult("centrifugo", 5000, 4950, 36, 3, nil)) // chatflow's run missing
	write("idle-centrifugo.json", &Result{Metrics: map[string]float64{"api_kb_per_idle_connection": 46}})
	pairs, ic, ih, err := LoadPeerResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 2 || pairs[0].Offered != 1000 || pairs[1].Offered != 2500 || pairs[1].Chat.Latency["send_to_ack"].P99 != 187 {
		t.Fatalf("pairs %+v", pairs)
	}
	if ic == nil || ih != nil {
		t.Fatalf("idle: %v %v", ic, ih)
	}
	if strings.Contains(PeerTable(pairs, ic, ih), "Idle") {
		t.Error("idle line printed without chatflow's idle run")
	}
	if _, _, _, err := LoadPeerResults(t.TempDir()); err == nil {
		t.Error("an empty directory gave no error")
	}
}
