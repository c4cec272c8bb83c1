package chatflow

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for every text validator. Run one with, for example,
//
//	go test -run XXX -fuzz '^FuzzValidJSONText$' -fuzztime 10s .
//
// Plain `go test` runs each target on its seed corpus.

// textSeeds are inputs worth starting from: every kind of poison.
var textSeeds = []string{
	"", "a", "hello world", "Zoë ⛵ 😀", "line one\nline two", "a\tb", "a\r\nb",
	"\x00", "a\x00b", "\x01\x1f", "\x1b[31m", "\x7f", "\u0085", "\u2028", "\ufffd", "\uffff",
	"\xff", "\x80", "\xc0\xaf", "\xc0\x80", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "abc\xe2\x82",
	"alice_01", "alice@example.com", "m-1", strings.Repeat("x", 65), strings.Repeat("é", 101),
}

// textClean is the reference: valid UTF-8 with no C0 control or DEL, except
// "\n" and "\t" when multi.
func textClean(s string, multi bool) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		if multi && (r == '\n' || r == '\t') {
			return false
		}
		return r < 0x20 || r == 0x7f
	})
}

// checkResult fails unless err is nil or a validation_failed error with a
// detail, and unless an accepted s is clean text.
func checkResult(t *testing.T, what, s string, multi bool, err error) {
	t.Helper()
	if err != nil {
		if ErrorCode(err) != ECodeValidation || ErrorDetail(err) == "" {
			t.Fatalf("%s(%q): error %v is not a validation_failed domain error", what, s, err)
		}
		return
	}
	if !textClean(s, multi) {
		t.Fatalf("%s accepted %q: invalid UTF-8 or a control character", what, s)
	}
}

func FuzzValidText(f *testing.F) {
	for _, s := range textSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, multi bool) {
		err := ValidText("f", s, multi)
		checkResult(t, "ValidText", s, multi, err)
		// Exact: refused exactly when the reference says unclean.
		if (err == nil) != textClean(s, multi) {
			t.Fatalf("ValidText(%q, %v) = %v, reference clean = %v", s, multi, err, textClean(s, multi))
		}
	})
}

func fuzzValidator(f *testing.F, what string, multi bool, v func(string) error) {
	for _, s := range textSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := v(s)
		checkResult(t, what, s, multi, err)
		// A validator is never looser than ValidText for its kind of field.
		if err == nil && ValidText(what, s, multi) != nil {
			t.Fatalf("%s accepted %q which ValidText refuses", what, s)
		}
	})
}

func FuzzValidBody(f *testing.F) {
	fuzzValidator(f, "ValidBody", true, func(s string) error {
		err := ValidBody(s)
		if err == nil && (s == "" || utf8.RuneCountInString(s) > MaxBodyChars) {
			return Errorf("wrong", "ValidBody accepted a body of %d characters", utf8.RuneCountInString(s))
		}
		return err
	})
}

func FuzzValidDisplayName(f *testing.F) {
	fuzzValidator(f, "ValidDisplayName", false, ValidDisplayName)
}

func FuzzValidRoomName(f *testing.F) {
	fuzzValidator(f, "ValidRoomName", false, ValidRoomName)
}

func FuzzValidStatusMessage(f *testing.F) {
	fuzzValidator(f, "ValidStatusMessage", false, ValidStatusMessage)
}

func FuzzValidSearchQuery(f *testing.F) {
	fuzzValidator(f, "ValidSearchQuery", false, ValidSearchQuery)
}

func FuzzValidIdempotencyKey(f *testing.F) {
	fuzzValidator(f, "ValidIdempotencyKey", false, ValidIdempotencyKey)
}

func FuzzValidCursor(f *testing.F) {
	fuzzValidator(f, "ValidCursor", false, func(s string) error { return ValidCursor("cursor", s) })
}

func FuzzValidClientMsgID(f *testing.F) {
	fuzzValidator(f, "ValidClientMsgID", false, func(s string) error {
		err := ValidClientMsgID(s)
		if err == nil && strings.ContainsAny(s, " ") {
			return Errorf("wrong", "ValidClientMsgID accepted a space")
		}
		return err
	})
}

func FuzzValidUsername(f *testing.F) {
	fuzzValidator(f, "ValidUsername", false, func(s string) error {
		if !ValidUsername(s) {
			return Errorf(ECodeValidation, "refused")
		}
		if len(s) < 3 || len(s) > 32 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			return Errorf("wrong", "ValidUsername accepted %q", s)
		}
		return nil
	})
}

func FuzzSignupValidate(f *testing.F) {
	f.Add("alice_01", "alice@example.com", "password", "Alice")
	for _, s := range textSeeds {
		f.Add("alice_01", "a"+s+"@example.com", "password", "Al"+s)
		f.Add(s, s, s, s)
	}
	f.Fuzz(func(t *testing.T, username, email, password, display string) {
		r := SignupRequest{Username: username, Email: email, Password: password, DisplayName: display}
		r.Normalize()
		err := r.Validate()
		if err != nil {
			if ErrorCode(err) != ECodeValidation || ErrorDetail(err) == "" {
				t.Fatalf("Validate(%+v): %v is not a validation_failed domain error", r, err)
			}
			return
		}
		for field, s := range map[string]string{"username": r.Username, "email": r.Email, "display_name": r.DisplayName} {
			if !textClean(s, false) {
				t.Fatalf("Validate accepted %s %q", field, s)
			}
		}
		if !ValidUsername(r.Username) || r.DisplayName == "" {
			t.Fatalf("Validate accepted %+v", r)
		}
	})
}

// jsonSeeds exercise every escape and the surrogate logic.
var jsonSeeds = []string{
	`{"type":"send","room_id":"r","client_msg_id":"m1","body":"hi"}`,
	`{"body":"\ud83d\ude00"}`, `{"body":"\uD83D\uDE00\u00e9"}`, `{"body":"\ud800"}`, `{"body":"\udc00"}`,
	`{"body":"\ud83d\u0041"}`, `{"body":"\ude00\ud83d"}`, `{"body":"\ud83d\ud83d\ude00"}`,
	`{"body":"\u0000"}`, `{"\u0000":1}`, `{"body":"\\ud800"}`, `{"body":"\"\ud800"}`,
	`{"body":"a\nb\tc\r\"\\\/\b\f"}`, `{"body":"\ufffd"}`, `["\udbff\udfff",null,true,1.5e3,{}]`,
	"{\"body\":\"\xff\"}", "{\"body\":\"\xed\xa0\x80\"}", "{\"body\":\"\xef\xbf\xbd\"}",
	`"\ud8`, `"\`, `{"a":"\ud800\udc`, ``, `{`, `"unterminated`,
}

// checkJSONText holds the properties of ValidJSONText for one input.
func checkJSONText(t *testing.T, raw []byte) {
	err := ValidJSONText(raw)
	if err != nil && (ErrorCode(err) != ECodeValidation || ErrorDetail(err) == "") {
		t.Fatalf("ValidJSONText(%q): %v is not a validation_failed domain error", raw, err)
	}
	if !utf8.Valid(raw) {
		if err == nil {
			t.Fatalf("ValidJSONText accepted invalid UTF-8 %q", raw)
		}
		return
	}
	if !json.Valid(raw) {
		return // the decoder refuses it anyway; only "never panics" applies
	}
	// For JSON, ValidJSONText accepts exactly what the strict reference
	// decoder accepts in every string (keys included)...
	strict := true
	for _, lit := range stringLiterals(raw) {
		if _, ok := strictUnquote(lit); !ok {
			strict = false
		}
	}
	if (err == nil) != strict {
		t.Fatalf("ValidJSONText(%q) = %v, strict reference accepts = %v", raw, err, strict)
	}
	if err != nil {
		return
	}
	// ...and then encoding/json decodes every string exactly as the strict
	// decoder does: no silent U+FFFD, no NUL.
	got, want := decodedStrings(t, raw), strictStrings(t, raw)
	if len(got) != len(want) {
		t.Fatalf("%q: encoding/json found %d strings, reference %d", raw, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%q: encoding/json decoded %q, strict %q", raw, got[i], want[i])
		}
		if strings.ContainsRune(got[i], 0) || !utf8.ValidString(got[i]) {
			t.Fatalf("%q: accepted, but decodes to %q", raw, got[i])
		}
	}
}

func FuzzValidJSONText(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkJSONText)
}

// FuzzJSONEscapes builds a string literal out of \uXXXX escapes (two fuzz
// bytes each) mixed with raw text, so the fuzzer reaches every surrogate
// combination quickly.
func FuzzJSONEscapes(f *testing.F) {
	f.Add([]byte{0xd8, 0x3d, 0xde, 0x00}, "x")
	f.Add([]byte{0xd8, 0x00}, "")
	f.Add([]byte{0xdc, 0x00, 0xd8, 0x00}, "é")
	f.Add([]byte{0x00, 0x00}, "a")
	f.Add([]byte{0xdb, 0xff, 0xdf, 0xff, 0x00, 0x41}, `\n`)
	f.Fuzz(func(t *testing.T, units []byte, raw string) {
		var b strings.Builder
		b.WriteString(`{"k":"`)
		for i := 0; i+1 < len(units); i += 2 {
			const hex = "0123456789abcdef"
			u := int(units[i])<<8 | int(units[i+1])
			b.WriteString(`\u`)
			for sh := 12; sh >= 0; sh -= 4 {
				c := hex[u>>sh&0xf]
				if units[i]&1 == 1 && c >= 'a' { // mix in upper-case hex digits
					c -= 'a' - 'A'
				}
				b.WriteByte(c)
			}
			if i == 2 && raw != "" {
				b.WriteString(raw)
			}
		}
		b.WriteString(`"}`)
		checkJSONText(t, []byte(b.String()))
	})
}
