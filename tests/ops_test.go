package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

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
	resp, body := get(t, n.URL+"/readyz")
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || resp.StatusCode != 200 || ready.Status != "ready" {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	for _, dep := range []string{"postgres", "redis", "temporal", "kafka"} {
		if ready.Checks[dep] != "ok" {
			t.Fatalf("readyz check %s = %q", dep, ready.Checks[dep])
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

// TestOpsReadyzReportsBrokenDependency: a node whose Kafka is unreachable is
// not ready, and says which dependency failed.
func TestOpsReadyzReportsBrokenDependency(t *testing.T) {
	env := testenv.Open(t)
	n := env.StartNode(t, testenv.NodeConfig{KafkaBrokers: "127.0.0.1:1"})
	resp, body := get(t, n.URL+"/readyz")
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	_ = json.Unmarshal(body, &ready)
	if resp.StatusCode != 503 || ready.Status != "unavailable" || ready.Checks["kafka"] == "ok" || ready.Checks["postgres"] != "ok" {
		t.Fatalf("readyz with Kafka down: %d %s", resp.StatusCode, body)
	}
}
