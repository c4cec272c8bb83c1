package tests

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow/internal/testenv"
)

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestOpsEndpoints: liveness, readiness against every real dependency, the
// API description and its rendered page, and request ids.
func TestOpsEndpoints(t *testing.T) {
	env := testenv.Open(t)
	n := env.StartNode(t, testenv.NodeConfig{})

	if resp, _ := get(t, n.URL+"/healthz"); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	// Anyone gets the verdict; an admin token also gets each dependency.
	resp, body := get(t, n.URL+"/readyz")
	var ready map[string]any
	if err := json.Unmarshal(body, &ready); err != nil || resp.StatusCode != 200 || ready["status"] != "ready" || len(ready) != 1 {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	admin := adminToken(t, env)
	st, detail := readyzAs(t, n, admin)
	if st != 200 || detail.Status != "ready" {
		t.Fatalf("readyz as admin: %d %+v", st, detail)
	}
	for _, dep := range []string{"postgres", "redis", "temporal", "kafka"} {
		if detail.Checks[dep] != "ok" {
			t.Fatalf("readyz check %s = %q", dep, detail.Checks[dep])
		}
	}

	resp, body = get(t, n.URL+"/openapi.json")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Paths["/api/v1/signup"]["post"] == nil {
		t.Fatalf("openapi.json: %d %.200s", resp.StatusCode, body)
	}
	resp, body = get(t, n.URL+"/docs")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "/openapi.json") {
		t.Fatalf("docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Every response carries a request id, and problem bodies repeat it.
	resp, body = get(t, n.URL+"/api/v1/nope")
	rid := resp.Header.Get("X-Request-ID")
	if rid == "" || !strings.Contains(string(body), rid) {
		t.Fatalf("request id %q not in problem %s", rid, body)
	}
}

type readyzDetail struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyzAs reads /readyz with a bearer token.
func readyzAs(t *testing.T, n *testenv.Node, tok string) (int, readyzDetail) {
	t.Helper()
	var d readyzDetail
	return n.Call(t, "GET", "/readyz", tok, nil, &d), d
}

// adminToken is an access token with role admin, signed with the test
// nodes' key (readyz trusts the signed claim; admin routes also ask the
// database, see TestAdminGrant).
func adminToken(t *testing.T, env *testenv.Env) string {
	t.Helper()
	p, err := env.Tokens().Issue(context.Background(), uuid.NewString(), "ops_admin", "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	return p.AccessToken
}

// TestOpsReadyzReportsBrokenDependency: a node whose Kafka is unreachable is
// not ready (503). Anonymous callers and plain users learn only that; an
// admin learns which dependency failed and why.
func TestOpsReadyzReportsBrokenDependency(t *testing.T) {
	env := testenv.Open(t)
	n := env.StartNode(t, testenv.NodeConfig{KafkaBrokers: "127.0.0.1:1"})
	resp, body := get(t, n.URL+"/readyz")
	var ready map[string]any
	_ = json.Unmarshal(body, &ready)
	if resp.StatusCode != 503 || ready["status"] != "unavailable" || len(ready) != 1 || strings.Contains(string(body), "127.0.0.1") {
		t.Fatalf("anonymous readyz with Kafka down: %d %s", resp.StatusCode, body)
	}
	user, err := env.Tokens().Issue(context.Background(), uuid.NewString(), "ops_user", "user", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"user": user.AccessToken, "bad token": "abc.def.ghi"} {
		if st, d := readyzAs(t, n, tok); st != 503 || d.Status != "unavailable" || d.Checks != nil {
			t.Fatalf("readyz as %s with Kafka down: %d %+v", name, st, d)
		}
	}
	st, d := readyzAs(t, n, adminToken(t, env))
	if st != 503 || d.Status != "unavailable" || d.Checks["kafka"] == "ok" || d.Checks["kafka"] == "" || d.Checks["postgres"] != "ok" {
		t.Fatalf("readyz as admin with Kafka down: %d %+v", st, d)
	}
}

// TestOpsMetricsOnInternalAddress: /metrics is not on the public listener;
// the node serves it on its metrics address (METRICS_ADDR).
func TestOpsMetricsOnInternalAddress(t *testing.T) {
	env := testenv.Open(t)
	n := env.StartNode(t, testenv.NodeConfig{})
	n.Call(t, "GET", "/healthz", "", nil, nil)
	if resp, body := get(t, n.URL+"/metrics"); resp.StatusCode != 404 || strings.Contains(string(body), "chatflow_http_requests_total") {
		t.Fatalf("public /metrics: %d %.200s", resp.StatusCode, body)
	}
	resp, body := get(t, n.MetricsURL)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `chatflow_http_requests_total{method="GET",route="/healthz"`) {
		t.Fatalf("internal /metrics: %d %.300s", resp.StatusCode, body)
	}
	if !strings.HasPrefix(n.MetricsURL, "http://127.0.0.1:") {
		t.Fatalf("metrics address %s is not loopback", n.MetricsURL)
	}
	// the Web UI's codec endpoint decodes batch bodies: internal only
	payloads := `{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"e30="}]}`
	pub, err := http.Post(n.URL+"/codec/decode", "application/json", strings.NewReader(payloads))
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode != 404 {
		t.Fatalf("public /codec/decode: %d, want 404", pub.StatusCode)
	}
	internal, err := http.Post(strings.TrimSuffix(n.MetricsURL, "/metrics")+"/codec/decode", "application/json", strings.NewReader(payloads))
	if err != nil {
		t.Fatal(err)
	}
	internal.Body.Close()
	if internal.StatusCode != 200 {
		t.Fatalf("internal /codec/decode: %d, want 200", internal.StatusCode)
	}
}
