package chatflow

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// wantValidation fails unless err is nil (ok) or a validation_failed domain error.
func wantValidation(t *testing.T, what string, err error, ok bool) {
	t.Helper()
	if ok {
		if err != nil {
			t.Errorf("%s: rejected: %v", what, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s: accepted, want %s", what, ECodeValidation)
		return
	}
	if code := ErrorCode(err); code != ECodeValidation {
		t.Errorf("%s: code %q (%v), want %s", what, code, err, ECodeValidation)
	}
	if ErrorDetail(err) == "internal error" || ErrorDetail(err) == "" {
		t.Errorf("%s: no detail for the client: %v", what, err)
	}
}

func TestSignupRequestValidate(t *testing.T) {
	valid := func() SignupRequest {
		return SignupRequest{Username: "alice_01", Email: "alice@example.com", Password: "password", DisplayName: "Alice"}
	}
	cases := []struct {
		name string
		mod  func(r *SignupRequest)
		ok   bool
	}{
		{"valid", func(*SignupRequest) {}, true},
		{"username 3", func(r *SignupRequest) { r.Username = "abc" }, true},
		{"username 32", func(r *SignupRequest) { r.Username = strings.Repeat("a", 32) }, true},
		{"username digits and underscore", func(r *SignupRequest) { r.Username = "_0_9_" }, true},
		{"username 2", func(r *SignupRequest) { r.Username = "ab" }, false},
		{"username 33", func(r *SignupRequest) { r.Username = strings.Repeat("a", 33) }, false},
		{"username empty", func(r *SignupRequest) { r.Username = "" }, false},
		{"username upper case", func(r *SignupRequest) { r.Username = "Alice" }, false},
		{"username hyphen", func(r *SignupRequest) { r.Username = "al-ice" }, false},
		{"username dot", func(r *SignupRequest) { r.Username = "al.ice" }, false},
		{"username space", func(r *SignupRequest) { r.Username = "al ice" }, false},
		{"username trailing newline", func(r *SignupRequest) { r.Username = "alice\n" }, false},
		{"username non-ASCII letter", func(r *SignupRequest) { r.Username = "alïce" }, false},
		{"username 3 non-ASCII runes", func(r *SignupRequest) { r.Username = "äöü" }, false},
		{"password 8", func(r *SignupRequest) { r.Password = "12345678" }, true},
		{"password 72 bytes", func(r *SignupRequest) { r.Password = strings.Repeat("p", 72) }, true},
		{"password 7", func(r *SignupRequest) { r.Password = "1234567" }, false},
		{"password empty", func(r *SignupRequest) { r.Password = "" }, false},
		{"password 73 bytes", func(r *SignupRequest) { r.Password = strings.Repeat("p", 73) }, false},
		{"password 8 multibyte runes", func(r *SignupRequest) { r.Password = "пароль12" }, true},
		{"email empty", func(r *SignupRequest) { r.Email = "" }, false},
		{"email without at", func(r *SignupRequest) { r.Email = "alice.example.com" }, false},
		{"email without domain dot", func(r *SignupRequest) { r.Email = "alice@localhost" }, false},
		{"email two ats", func(r *SignupRequest) { r.Email = "a@b@c.com" }, false},
		{"email with space", func(r *SignupRequest) { r.Email = "al ice@example.com" }, false},
		{"email empty local part", func(r *SignupRequest) { r.Email = "@example.com" }, false},
		{"email too long", func(r *SignupRequest) { r.Email = strings.Repeat("a", 250) + "@b.co" }, false},
		{"email subdomain", func(r *SignupRequest) { r.Email = "a+tag@mail.example.co.uk" }, true},
		{"display name 64 runes", func(r *SignupRequest) { r.DisplayName = strings.Repeat("é", 64) }, true},
		{"display name 65 runes", func(r *SignupRequest) { r.DisplayName = strings.Repeat("é", 65) }, false},
		{"display name invalid UTF-8", func(r *SignupRequest) { r.DisplayName = "a\xffb" }, false},
		{"display name NUL", func(r *SignupRequest) { r.DisplayName = "Al\x00ice" }, false},
		{"display name newline", func(r *SignupRequest) { r.DisplayName = "Al\nice" }, false},
		{"display name tab", func(r *SignupRequest) { r.DisplayName = "Al\tice" }, false},
		{"display name DEL", func(r *SignupRequest) { r.DisplayName = "Al\x7fice" }, false},
		{"email NUL", func(r *SignupRequest) { r.Email = "alice\x00@example.com" }, false},
		{"email control in domain", func(r *SignupRequest) { r.Email = "alice@exa\x01mple.com" }, false},
		{"email DEL", func(r *SignupRequest) { r.Email = "alice@example.com\x7f" }, false},
		{"email invalid UTF-8", func(r *SignupRequest) { r.Email = "al\xffice@example.com" }, false},
		{"username NUL", func(r *SignupRequest) { r.Username = "alice\x00" }, false},
		{"password with NUL is not text", func(r *SignupRequest) { r.Password = "pass\x00word" }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := valid()
			c.mod(&r)
			wantValidation(t, c.name, r.Validate(), c.ok)
		})
	}

	// An empty display name defaults to the username.
	r := valid()
	r.DisplayName = ""
	if err := r.Validate(); err != nil || r.DisplayName != r.Username {
		t.Errorf("empty display name: err %v, display name %q, want %q", err, r.DisplayName, r.Username)
	}

	// Normalize trims and lower-cases the email, trims the rest; the username
	// keeps its case so that "Alice" is refused rather than silently renamed.
	r = SignupRequest{Username: "  bob_1 ", Email: " Bob@Example.COM ", Password: "password", DisplayName: "  Bob  "}
	r.Normalize()
	if r.Username != "bob_1" || r.Email != "bob@example.com" || r.DisplayName != "Bob" || r.Password != "password" {
		t.Errorf("Normalize = %+v", r)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("normalized request rejected: %v", err)
	}
	r = SignupRequest{Username: "Bob_1", Email: "b@example.com", Password: "password"}
	r.Normalize()
	wantValidation(t, "upper-case username after Normalize", r.Validate(), false)
	// A password is never trimmed: spaces are part of it.
	r = SignupRequest{Username: "bob_1", Email: "b@example.com", Password: "  pass  "}
	r.Normalize()
	if r.Password != "  pass  " {
		t.Errorf("Normalize changed the password to %q", r.Password)
	}
}

func TestValidBody(t *testing.T) {
	cases := []struct {
		name string
		body string
		ok   bool
	}{
		{"one char", "x", true},
		{"empty", "", false},
		{"4000 ASCII", strings.Repeat("a", 4000), true},
		{"4001 ASCII", strings.Repeat("a", 4001), false},
		{"4000 two-byte runes", strings.Repeat("é", 4000), true},
		{"4001 two-byte runes", strings.Repeat("é", 4001), false},
		{"4000 four-byte runes", strings.Repeat("😀", 4000), true},
		{"4001 four-byte runes", strings.Repeat("😀", 4001), false},
		{"whitespace only", "   ", true},
		{"invalid UTF-8 byte", "hello \xff", false},
		{"truncated rune", "abc\xe2\x82", false},
		{"lone surrogate (CESU)", "\xed\xa0\x80", false},
		{"overlong encoding", "\xc0\xaf", false},
		{"NUL", "a\x00b", false},
		{"NUL alone", "\x00", false},
		{"multi-line", "line one\nline two", true},
		{"tab", "a\tb", true},
		{"only a newline", "\n", true},
		{"carriage return", "line one\r\nline two", false},
		{"escape", "\x1b[31mred", false},
		{"bell", "\a", false},
		{"unit separator", "a\x1fb", false},
		{"DEL", "a\x7fb", false},
		{"U+FFFD itself is fine", "\ufffd", true},
		{"C1 control is not C0", "a\u0085b", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantValidation(t, c.name, ValidBody(c.body), c.ok) })
	}
	if err := ValidBody(strings.Repeat("a", 4001)); err == nil || !strings.Contains(ErrorDetail(err), "4000") {
		t.Errorf("too-long body detail %q does not name the limit", ErrorDetail(err))
	}
}

func TestValidClientMsgID(t *testing.T) {
	cases := []struct {
		name string
		id   string
		ok   bool
	}{
		{"simple", "m1", true},
		{"uuid", "0190a7f2-8c1e-7d3a-9b2f-1a2b3c4d5e6f", true},
		{"one char", "x", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"all printable punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", true},
		{"empty", "", false},
		{"65 chars", strings.Repeat("a", 65), false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\n", false},
		{"NUL", "a\x00", false},
		{"DEL", "a\x7f", false},
		{"non-ASCII", "é", false},
		{"emoji", "😀", false},
		{"invalid UTF-8", "\xff", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantValidation(t, c.name, ValidClientMsgID(c.id), c.ok) })
	}
}

func TestValidDisplayNameAndUsername(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{{"A", true}, {"", false}, {strings.Repeat("x", 64), true}, {strings.Repeat("x", 65), false}, {"\xff", false}, {"Zoë ⛵", true}} {
		wantValidation(t, fmt.Sprintf("display name %q", c.s), ValidDisplayName(c.s), c.ok)
	}
	for _, c := range []struct {
		s  string
		ok bool
	}{{"abc", true}, {"ab", false}, {"a_b_c", true}, {"ABC", false}, {"a b", false}, {"", false}} {
		if ValidUsername(c.s) != c.ok {
			t.Errorf("ValidUsername(%q) = %v, want %v", c.s, !c.ok, c.ok)
		}
	}
}

func TestErrors(t *testing.T) {
	e := Errorf(ECodeUsernameTaken, "username %q is taken", "bob")
	wrapped := fmt.Errorf("signup: %w", e)
	if ErrorCode(wrapped) != ECodeUsernameTaken || ErrorDetail(wrapped) != `username "bob" is taken` {
		t.Errorf("wrapped domain error: %q %q", ErrorCode(wrapped), ErrorDetail(wrapped))
	}
	if e.Error() != `username_taken: username "bob" is taken` {
		t.Errorf("Error() = %q", e.Error())
	}
	plain := errors.New("pq: connection refused to 10.0.0.5")
	if ErrorCode(plain) != ECodeInternal || ErrorDetail(plain) != "internal error" {
		t.Errorf("internal errors leak: %q %q", ErrorCode(plain), ErrorDetail(plain))
	}
	if ErrorCode(nil) != ECodeInternal {
		t.Errorf("ErrorCode(nil) = %q", ErrorCode(nil))
	}
}
