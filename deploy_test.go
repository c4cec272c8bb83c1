package chatflow

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// queryVars are the nginx variables that hold a request's query string,
// where browsers put a WebSocket's access token.
var queryVars = regexp.MustCompile(`\$(request|request_uri|args|query_string|arg_[a-z_]+)\b`)

// TestDeployLogsNoQueryStrings: the shipped nginx logs every request with
// a format that leaves the query string out, and the Kubernetes /ws route
// (the only one that takes ?access_token=) has no access log.
func TestDeployLogsNoQueryStrings(t *testing.T) {
	conf := readFile(t, "deploy/nginx.conf")
	formats := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)log_format\s+(\S+)\s+(.*?);`).FindAllStringSubmatch(conf, -1) {
		formats[m[1]] = m[2]
	}
	logs := regexp.MustCompile(`access_log\s+(\S+)\s*(\S*?);`).FindAllStringSubmatch(conf, -1)
	if len(logs) == 0 {
		t.Fatal("deploy/nginx.conf sets no access_log: nginx would use its default format, which logs $request")
	}
	for _, l := range logs {
		if l[1] == "off" {
			continue
		}
		f, ok := formats[l[2]]
		if !ok {
			t.Fatalf("access_log %s uses format %q, not defined here (the default logs $request)", l[1], l[2])
		}
		if v := queryVars.FindString(f); v != "" {
			t.Errorf("log format %s logs %s, which holds the query string", l[2], v)
		}
	}

	k8s := readFile(t, "deploy/k8s/chatflow.yaml")
	var wsIngress string
	for _, doc := range strings.Split(k8s, "\n---") {
		if strings.Contains(doc, "kind: Ingress") && strings.Contains(doc, "path: /ws") {
			wsIngress = doc
		}
	}
	if !strings.Contains(wsIngress, `nginx.ingress.kubernetes.io/enable-access-log: "false"`) {
		t.Errorf("the Ingress serving /ws logs its requests (and their ?access_token=)")
	}
}

// TestDeploySecretsAndAddresses: the deploy files take the JWT key from
// outside with no default, and listen on all interfaces only where they
// say so.
func TestDeploySecretsAndAddresses(t *testing.T) {
	compose := readFile(t, "deploy/compose.yaml")
	if !strings.Contains(compose, `JWT_SECRET: "${JWT_SECRET:?`) {
		t.Error("compose.yaml does not require JWT_SECRET from the environment")
	}
	if !strings.Contains(compose, `HTTP_ADDR: "0.0.0.0:8080"`) {
		t.Error("compose.yaml does not set HTTP_ADDR explicitly")
	}
	k8s := readFile(t, "deploy/k8s/chatflow.yaml")
	for _, role := range []string{`args: ["migrate"]`, `args: ["api"]`, `args: ["worker"]`} {
		i := strings.Index(k8s, role)
		end := strings.Index(k8s[i:], "\n---")
		if i < 0 || end < 0 || !strings.Contains(k8s[i:i+end], "secretKeyRef: { name: chatflow-jwt, key: JWT_SECRET }") {
			t.Errorf("k8s %s does not take JWT_SECRET from the chatflow-jwt Secret", role)
		}
	}
	if regexp.MustCompile(`(?m)^\s+JWT_SECRET:`).MatchString(k8s) {
		t.Error("k8s manifest ships a JWT_SECRET value")
	}
	if !strings.Contains(k8s, `{ name: HTTP_ADDR, value: "0.0.0.0:8080" }`) {
		t.Error("k8s api does not set HTTP_ADDR explicitly")
	}
}

// TestDeployRedisFsyncsEveryAck: the shipped Redis keeps the AOF that the
// ack's durability rests on (a send is acked after Redis' fsync).
func TestDeployRedisFsyncsEveryAck(t *testing.T) {
	compose := readFile(t, "deploy/compose.yaml")
	m := regexp.MustCompile(`(?m)^\s+command: \["redis-server"(.*)\]`).FindStringSubmatch(compose)
	if m == nil {
		t.Fatal("compose.yaml runs no redis-server command")
	}
	for _, want := range []string{`"--appendonly", "yes"`, `"--appendfsync", "always"`} {
		if !strings.Contains(m[1], want) {
			t.Errorf("compose.yaml's Redis lacks %s: acked messages could be lost in an OS crash", want)
		}
	}
}

// TestDeployPostgresStatementStats: compose's Postgres preloads
// pg_stat_statements and creates its view on first start, as the local
// services do (README "Operations").
func TestDeployPostgresStatementStats(t *testing.T) {
	compose := readFile(t, "deploy/compose.yaml")
	i := strings.Index(compose, "\n  postgres:\n")
	if i < 0 {
		t.Fatal("compose.yaml has no postgres service")
	}
	svc := compose[i+1:]
	if end := regexp.MustCompile(`\n  \S`).FindStringIndex(svc[1:]); end != nil {
		svc = svc[:end[0]+1]
	}
	if !strings.Contains(svc, `"shared_preload_libraries=pg_stat_statements"`) {
		t.Error("compose.yaml's postgres does not preload pg_stat_statements")
	}
	m := regexp.MustCompile(`\./(\S+\.sql):/docker-entrypoint-initdb\.d/`).FindStringSubmatch(svc)
	if m == nil {
		t.Fatal("compose.yaml's postgres mounts no init script")
	}
	if init := readFile(t, "deploy/"+m[1]); !strings.Contains(init, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements") {
		t.Errorf("deploy/%s does not create pg_stat_statements", m[1])
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
