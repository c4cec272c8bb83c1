package chatflow

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidTextControlCharacters(t *testing.T) {
	for c := 0; c < 0x80; c++ {
		s := "a" + string(rune(c)) + "b"
		control := c < 0x20 || c == 0x7f
		multi := c == '\n' || c == '\t'
		wantValidation(t, fmt.Sprintf("single-line U+%04X", c), ValidText("f", s, false), !control)
		wantValidation(t, fmt.Sprintf("multi-line U+%04X", c), ValidText("f", s, true), !control || multi)
	}
	// The detail names the field and the character, so a client can find it.
	err := ValidText("display_name", "ab\x00", false)
	if d := ErrorDetail(err); !strings.Contains(d, "display_name") || !strings.Contains(d, "U+0000") || !strings.Contains(d, "byte 2") {
		t.Errorf("detail %q does not name the field, character and position", d)
	}
}

func TestValidText(t *testing.T) {
	cases := []struct {
		name  string
		s     string
		multi bool
		ok    bool
	}{
		{"empty (length is the caller's)", "", false, true},
		{"ASCII", "hello", false, true},
		{"non-ASCII", "Zoë ⛵ 😀 日本", false, true},
		{"U+FFFD", "\ufffd", false, true},
		{"noncharacter U+FFFF", "\uffff", false, true},
		{"C1 control U+0085", "\u0085", false, true},
		{"line separator U+2028", "a\u2028b", false, true},
		{"newline in single-line", "a\nb", false, false},
		{"newline in multi-line", "a\nb", true, true},
		{"tab in multi-line", "a\tb", true, true},
		{"CR in multi-line", "a\r\nb", true, false},
		{"NUL first", "\x00", true, false},
		{"NUL last", "abc\x00", true, false},
		{"vertical tab", "a\vb", true, false},
		{"form feed", "a\fb", true, false},
		{"DEL", "\x7f", true, false},
		{"invalid byte", "a\xffb", true, false},
		{"lone continuation byte", "\x80", true, false},
		{"truncated 3-byte rune", "a\xe2\x82", true, false},
		{"truncated 4-byte rune", "\xf0\x9f\x98", true, false},
		{"UTF-8 encoded high surrogate (CESU)", "\xed\xa0\x80", true, false},
		{"UTF-8 encoded low surrogate", "\xed\xbf\xbf", true, false},
		{"CESU-8 pair", "\xed\xa0\xbd\xed\xb8\x80", true, false},
		{"overlong slash", "\xc0\xaf", true, false},
		{"overlong NUL", "\xc0\x80", true, false},
		{"above U+10FFFF", "\xf4\x90\x80\x80", true, false},
		{"5-byte form", "\xf8\x88\x80\x80\x80", true, false},
		{"U+10FFFF", "\U0010ffff", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantValidation(t, c.name, ValidText("f", c.s, c.multi), c.ok) })
	}
}

func TestValidJSONText(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"plain", `{"body":"hello"}`, true},
		{"empty", ``, true},
		{"non-ASCII raw", `{"body":"Zoë ⛵ 😀"}`, true},
		{"escaped BMP", `{"body":"\u00e9\u26F5"}`, true},
		{"surrogate pair", `{"body":"\ud83d\ude00"}`, true},
		{"surrogate pair upper-case hex", `{"body":"\uD83D\uDE00"}`, true},
		{"two pairs", `["\ud83d\ude00\ud83d\ude00"]`, true},
		{"escaped U+FFFD is a real character", `{"body":"\ufffd"}`, true},
		{"raw U+FFFD", "{\"body\":\"\xef\xbf\xbd\"}", true},
		{"escaped newline and tab", `{"body":"a\nb\tc"}`, true},
		{"escaped control other than NUL (per field)", `{"body":"\u0001"}`, true},
		{"escaped backslash then u", `{"body":"\\ud800"}`, true},
		{"escaped backslash then NUL-looking text", `{"body":"\\u0000"}`, true},
		{"escaped quote", `{"body":"\"\ud800"}`, false},
		{"NUL escape", `{"body":"a\u0000b"}`, false},
		{"NUL escape in a key", `{"a\u0000":1}`, false},
		{"lone high surrogate", `{"body":"\ud800"}`, false},
		{"lone high at end of string", `{"body":"ab\ud83d"}`, false},
		{"lone low surrogate", `{"body":"\udc00"}`, false},
		{"low then high", `{"body":"\ude00\ud83d"}`, false},
		{"high then non-surrogate escape", `{"body":"\ud83d\u0041"}`, false},
		{"high then raw character", `{"body":"\ud83dx"}`, false},
		{"high then high then low", `{"body":"\ud83d\ud83d\ude00"}`, false},
		{"pair then lone low", `{"body":"\ud83d\ude00\ude00"}`, false},
		{"high then other escape", `{"body":"\ud83d\n"}`, false},
		{"lone surrogate in a key", `{"\udfff":"x"}`, false},
		{"lone surrogate in a nested array", `{"a":[1,{"b":["ok","\uDBFF"]}]}`, false},
		{"invalid UTF-8 in a string", "{\"body\":\"a\xffb\"}", false},
		{"invalid UTF-8 outside strings", "{\"body\":\"a\"}\xff", false},
		{"CESU-8 surrogate raw", "{\"body\":\"\xed\xa0\x80\"}", false},
		{"overlong raw", "{\"body\":\"\xc0\xaf\"}", false},
		{"truncated escape (decoder refuses)", `{"body":"\ud8`, true},
		{"truncated after backslash (decoder refuses)", `"\`, true},
		{"high then truncated (decoder refuses)", `"\ud800\udc`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantValidation(t, c.name, ValidJSONText([]byte(c.raw)), c.ok)
			// Whenever both accept, encoding/json must not have rewritten anything.
			if c.ok && json.Valid([]byte(c.raw)) {
				if got, want := decodedStrings(t, []byte(c.raw)), strictStrings(t, []byte(c.raw)); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
					t.Errorf("encoding/json decoded %q, strict decoding is %q", got, want)
				}
			}
		})
	}
	// Why the raw check exists: encoding/json rewrites without an error.
	var v struct{ Body string }
	if err := json.Unmarshal([]byte(`{"body":"\ud800"}`), &v); err != nil || v.Body != "\ufffd" {
		t.Logf("encoding/json no longer rewrites lone surrogates (%q, %v); ValidJSONText still refuses them", v.Body, err)
	}
	if d := ErrorDetail(ValidJSONText([]byte(`{"body":"\ud800"}`))); !strings.Contains(d, "surrogate") || !strings.Contains(d, "byte 9") {
		t.Errorf("detail %q does not say what and where", d)
	}
	if d := ErrorDetail(ValidJSONText([]byte("{\"body\":\"ab\xff\"}"))); !strings.Contains(d, "UTF-8") || !strings.Contains(d, "byte 11") {
		t.Errorf("detail %q does not say what and where", d)
	}
}

func TestNewValidators(t *testing.T) {
	type tc struct {
		s  string
		ok bool
	}
	check := func(name string, f func(string) error, cases []tc) {
		for _, c := range cases {
			wantValidation(t, fmt.Sprintf("%s(%q)", name, c.s), f(c.s), c.ok)
		}
	}
	common := func(okValue string) []tc { // control characters are refused by every single-line field
		return []tc{
			{okValue, true},
			{okValue + "\x00", false}, {"\x00" + okValue, false}, {okValue + "\n", false}, {okValue + "\t", false},
			{okValue + "\r", false}, {okValue + "\x1b", false}, {okValue + "\x7f", false},
			{okValue + "\xff", false}, {okValue + "\xed\xa0\x80", false},
		}
	}
	check("ValidRoomName", ValidRoomName, append(common("general ⛵"),
		tc{"", false}, tc{strings.Repeat("é", MaxRoomNameChars), true}, tc{strings.Repeat("é", MaxRoomNameChars+1), false}))
	check("ValidDisplayName", ValidDisplayName, append(common("Zoë"),
		tc{"", false}, tc{strings.Repeat("😀", 64), true}, tc{strings.Repeat("😀", 65), false}))
	check("ValidStatusMessage", ValidStatusMessage, append(common("on a boat ⛵"),
		tc{"", true}, tc{strings.Repeat("s", 200), true}, tc{strings.Repeat("s", 201), false}))
	check("ValidSearchQuery", ValidSearchQuery, append(common("zo"),
		tc{"", false}, tc{strings.Repeat("q", 64), true}, tc{strings.Repeat("q", 65), false}, tc{"zoë", true}))
	check("ValidIdempotencyKey", ValidIdempotencyKey, append(common("dep-1"),
		tc{"", false}, tc{strings.Repeat("k", 128), true}, tc{strings.Repeat("k", 129), false}))
	check("ValidCursor", func(s string) error { return ValidCursor("cursor", s) }, append(common("MTcwMDAwMDAwMA"),
		tc{"", true}, tc{strings.Repeat("c", MaxCursorBytes), true}, tc{strings.Repeat("c", MaxCursorBytes+1), false}))
	if d := ErrorDetail(ValidCursor("after", "a\x00")); !strings.Contains(d, "after") {
		t.Errorf("cursor detail %q does not name the parameter", d)
	}
}

// decodedStrings returns every string token (keys included, in order) that
// encoding/json decodes from raw.
func decodedStrings(t testing.TB, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	var out []string
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
}

// strictStrings decodes every string literal of a valid JSON document raw
// with strictUnquote, failing the test if one is not strictly decodable.
func strictStrings(t testing.TB, raw []byte) []string {
	t.Helper()
	var out []string
	for _, lit := range stringLiterals(raw) {
		s, ok := strictUnquote(lit)
		if !ok {
			t.Fatalf("literal %q is not strictly decodable", lit)
		}
		out = append(out, s)
	}
	return out
}

// stringLiterals returns the string literals (without quotes) of a document
// that json.Valid accepts: outside strings such a document is ASCII
// punctuation, digits and words, so every '"' there starts a literal.
func stringLiterals(raw []byte) [][]byte {
	var out [][]byte
	for i := 0; i < len(raw); i++ {
		if raw[i] != '"' {
			continue
		}
		j := i + 1
		for ; j < len(raw) && raw[j] != '"'; j++ {
			if raw[j] == '\\' {
				j++
			}
		}
		out = append(out, raw[i+1:j])
		i = j
	}
	return out
}

// strictUnquote is the reference decoder of a JSON string literal body (RFC
// 8259 §7 read strictly): it turns the literal into UTF-16 code units and
// refuses invalid UTF-8, unpaired surrogates and U+0000, where encoding/json
// would substitute U+FFFD (NUL is refused because no chatflow field may hold
// it). It is written independently of ValidJSONText, on purpose.
func strictUnquote(lit []byte) (string, bool) {
	if !utf8ValidReference(lit) {
		return "", false
	}
	var units []uint16
	for i := 0; i < len(lit); {
		if lit[i] != '\\' {
			r, n := utf8.DecodeRune(lit[i:])
			if r > 0xFFFF {
				r -= 0x10000
				units = append(units, uint16(0xD800+(r>>10)), uint16(0xDC00+(r&0x3FF)))
			} else {
				units = append(units, uint16(r))
			}
			i += n
			continue
		}
		if i+1 >= len(lit) {
			return "", false
		}
		switch e := lit[i+1]; e {
		case '"', '\\', '/':
			units = append(units, uint16(e))
		case 'b':
			units = append(units, '\b')
		case 'f':
			units = append(units, '\f')
		case 'n':
			units = append(units, '\n')
		case 'r':
			units = append(units, '\r')
		case 't':
			units = append(units, '\t')
		case 'u':
			if i+6 > len(lit) {
				return "", false
			}
			u, err := strconv.ParseUint(string(lit[i+2:i+6]), 16, 16)
			if err != nil {
				return "", false
			}
			units = append(units, uint16(u))
			i += 6
			continue
		default:
			return "", false
		}
		i += 2
	}
	var b strings.Builder
	for k := 0; k < len(units); k++ {
		u := units[k]
		switch {
		case u == 0:
			return "", false
		case u >= 0xD800 && u < 0xDC00:
			if k+1 == len(units) || units[k+1] < 0xDC00 || units[k+1] > 0xDFFF {
				return "", false
			}
			b.WriteRune(0x10000 + (rune(u)-0xD800)<<10 + (rune(units[k+1]) - 0xDC00))
			k++
		case u >= 0xDC00 && u <= 0xDFFF:
			return "", false
		default:
			b.WriteRune(rune(u))
		}
	}
	return b.String(), true
}

// utf8ValidReference checks UTF-8 by round-tripping through []rune: any
// invalid sequence comes back as U+FFFD in a different byte form.
func utf8ValidReference(b []byte) bool {
	return string([]rune(string(b))) == string(b)
}
