package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/testenv"
)

// TestAuthWSOriginPolicy: a WebSocket upgrade from a browser page of another
// site (an Origin neither listed in WS_ORIGINS nor the node's own host) is
// refused with 403 forbidden before the upgrade, even with a valid token;
// listed and same-host origins, and clients that send no Origin at all
// (native apps, servers), get their socket.
func TestAuthWSOriginPolicy(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{WSOrigins: []string{"https://app.example.com"}})
	u := n.SignUp(t, "wsorig")

	dial := func(origin, tok string) (*websocket.Conn, *http.Response, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		url := "ws://" + n.Addr + "/ws"
		if tok != "" {
			url += "?access_token=" + tok
		}
		return websocket.DefaultDialer.Dial(url, h)
	}
	for _, origin := range []string{"", "https://app.example.com", "https://APP.example.com/", "http://" + n.Addr} {
		c, resp, err := dial(origin, u.Access)
		if err != nil {
			st := 0
			if resp != nil {
				st = resp.StatusCode
			}
			t.Errorf("origin %q: %v (status %d)", origin, err, st)
			continue
		}
		w := &testenv.WS{Conn: c}
		_ = c.WriteJSON(map[string]any{"type": "ping"})
		if _, err := w.Next(5*time.Second, testenv.OfType("pong")); err != nil {
			t.Errorf("origin %q: no pong: %v", origin, err)
		}
		c.Close()
	}
	for _, origin := range []string{"https://evil.example", "null", "http://" + n.Addr + ".evil.example", "https://app.example.com.evil.example", "file://"} {
		for _, tok := range []string{u.Access, ""} {
			c, resp, err := dial(origin, tok)
			if err == nil {
				c.Close()
				t.Errorf("origin %q (token %v): upgraded", origin, tok != "")
				continue
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("origin %q (token %v): %v %v, want 403", origin, tok != "", err, resp)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			var p problem
			if json.Unmarshal(body, &p) != nil || p.Code != chatflow.ECodeForbidden {
				t.Errorf("origin %q: body %s, want code %s", origin, body, chatflow.ECodeForbidden)
			}
		}
	}
}
