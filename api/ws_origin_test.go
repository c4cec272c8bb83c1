package api

import "testing"

func TestWSOriginAllowed(t *testing.T) {
	allowed := []string{"https://app.example.com", "http://localhost:5173/"}
	for _, tc := range []struct {
		origin, host string
		want         bool
	}{
		{"https://app.example.com", "api.example.com", true},
		{"HTTPS://App.Example.com/", "api.example.com", true},
		{"http://localhost:5173", "127.0.0.1:8080", true},
		{"http://127.0.0.1:8080", "127.0.0.1:8080", true}, // same host: the node's own web client
		{"https://chat.example.com", "chat.example.com", true},
		{"https://CHAT.example.com", "chat.example.com", true},
		{"https://evil.example", "chat.example.com", false},
		{"https://chat.example.com.evil.example", "chat.example.com", false},
		{"https://chat.example.com:8443", "chat.example.com", false},
		{"http://127.0.0.1:8081", "127.0.0.1:8080", false},
		{"null", "chat.example.com", false},
		{"file://", "", false},
		{"https://user@chat.example.com", "chat.example.com", false},
		{"https://chat.example.com/path", "chat.example.com", false},
		{"ws://chat.example.com", "chat.example.com", false},
		{"https://chat.example.com", "", false},
		{"https://app.example.com.", "api.example.com", false},
	} {
		if got := wsOriginAllowed(tc.origin, tc.host, allowed); got != tc.want {
			t.Errorf("origin %q host %q: %v, want %v", tc.origin, tc.host, got, tc.want)
		}
	}
}
