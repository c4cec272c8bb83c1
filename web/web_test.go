package web_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/chatflow/chatflow/web"
)

func TestServesClient(t *testing.T) {
	app := fiber.New()
	app.Get("/", web.Index)
	app.Use("/static", web.Static())
	app.Use(func(c *fiber.Ctx) error { return c.Status(fiber.StatusTeapot).SendString("fallthrough") })

	cases := []struct {
		path, status, ctype, contains string
	}{
		{"/", "200", "text/html", `<script src="/static/app.js"`},
		{"/static/app.js", "200", "javascript", "textContent"},
		{"/static/style.css", "200", "text/css", "--accent"},
		{"/static/friends.js", "200", "javascript", "/friends/requests"},
		{"/static/profile.js", "200", "javascript", "CF.openPanel"},
		{"/static/money.js", "200", "javascript", "/transfers"},
		{"/static/social.js", "200", "javascript", "/search?"},
		{"/static/react.js", "200", "javascript", "/reactions/"},
		{"/static/index.html", "200", "text/html", "chatflow"},
		{"/static/missing.js", "418", "", "fallthrough"},
		{"/static/../web.go", "418", "", "fallthrough"},
	}
	for _, tc := range cases {
		res, err := app.Test(httptest.NewRequest("GET", tc.path, nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(res.Body)
		if got := res.Status[:3]; got != tc.status {
			t.Errorf("%s: status %s, want %s", tc.path, got, tc.status)
		}
		if !strings.Contains(res.Header.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s: content type %q, want %q", tc.path, res.Header.Get("Content-Type"), tc.ctype)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s: body lacks %q", tc.path, tc.contains)
		}
	}
	res, _ := app.Test(httptest.NewRequest("GET", "/", nil))
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("index has no strict CSP: %q", csp)
	}
}
