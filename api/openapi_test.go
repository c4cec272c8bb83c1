package api

import (
	"encoding/json"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow/api/docs"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/realtime"
)

// TestOpenAPIMatchesRoutes fails when a route is added, removed or renamed
// without the OpenAPI document following, in either direction.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(docs.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	// A server whose dependencies are never dialled is enough to list its routes.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	core := chat.New(chat.DefaultConfig(), rdb, nil, nil, slog.Default())
	cfg := DefaultConfig()
	cfg.BcryptCost = 4
	s, err := New(Deps{Redis: rdb, Chat: core, Realtime: realtime.New(realtime.DefaultConfig(), core, slog.Default()), Log: slog.Default()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:([a-z_]+)`)
	served := map[string]bool{}
	for _, r := range s.App().GetRoutes(true) {
		if r.Method == "HEAD" || r.Path == "/" && r.Method == "USE" || r.Method == "USE" || strings.Contains(r.Path, "*") {
			continue
		}
		if strings.HasPrefix(r.Path, "/static") {
			continue
		}
		p := param.ReplaceAllString(r.Path, "{$1}")
		served[r.Method+" "+p] = true
	}
	var missing, stale []string
	for k := range served {
		if !documented[k] && k != "GET /" {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("routes not in openapi.json: %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf("openapi.json documents routes that do not exist: %v", stale)
	}
	if len(served) < 25 {
		t.Fatalf("only %d routes found; route listing is broken", len(served))
	}
}
